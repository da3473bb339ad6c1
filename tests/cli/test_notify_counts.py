"""`conveyor notify counts --channel`: an unknown channel is a usage error (exit 2, one
line naming the channels), as `notify send --channel fax` is to argparse; it printed
empty counts."""

from __future__ import annotations

import json

from tests.cli.conftest import run_conveyor


def test_an_unknown_channel_exits_2_naming_the_channels(sqlite_url: str) -> None:
    bad = run_conveyor("notify", "counts", "--channel", "fax", "--database", sqlite_url)
    assert bad.returncode == 2, (bad.stdout, bad.stderr)
    assert bad.stdout == ""
    [line] = bad.stderr.splitlines()
    assert line == ("conveyor notify counts: error: No channel 'fax'; the channels are "
                    "apns, apprise, email, fcm, push, webhook.")


def test_a_known_channel_prints_its_counts(sqlite_url: str) -> None:
    good = run_conveyor("notify", "counts", "--channel", "email", "--database", sqlite_url)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == {"counts": {}, "resent_after_crash": {}}
