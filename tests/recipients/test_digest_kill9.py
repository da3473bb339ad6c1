"""Digests survive `kill -9`, on both backends: the processes that hold the windows (the
producers calling `notify_recipient`) and the ones that release and send the digests
(`conveyor notify worker`) are real processes, killed again and again.

What the SMTP server on loopback received must show, per recipient: every event whose
notify call answered is in exactly one digest message (lost = 0, merged twice = 0), and a
digest message arrives more than once only as a resend the ledger counted (a worker killed
with it on the wire: the same Message-ID, the delivery layer's documented bound)."""

from __future__ import annotations

import asyncio
import email
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO

import pytest

from conveyor.broker.broker import Broker
from conveyor.demo.loopback import SmtpSink
from conveyor.storage.factory import storage_from_url
from tests.notify.helpers import smtp_server

RECIPIENTS = 30
EVENTS = 400  # per producer; two producers, the first killed part way
WINDOW = "8s"
VISIBILITY = 3  # seconds: how soon a killed worker's digests and envelopes come back
KILLS = 6
KILL_EVERY = 1.0

PRODUCER = """
import asyncio, sys
from conveyor.broker.broker import Broker
from conveyor.notify import Channel, Notifier
from conveyor.notify.people import PersonNotification, notify_recipient
from conveyor.recipients import ADDRESS_CHANNELS, Category
from conveyor.storage.factory import storage_from_url

async def main(url, first, count, recipients, window):
    broker = Broker(storage_from_url(url), sweep_interval=None)
    await broker.start()
    notifier = Notifier(broker, channels={c: Channel() for c in ADDRESS_CHANNELS})
    for i in range(first, first + count):
        r = f"r{i % recipients}"
        await notify_recipient(notifier, PersonNotification(
            r, Category("comments"), "digest", {"text": f"e{i}"},
            digest={"key": "activity", "window": window}), check_template=False)
        print(f"ok {r} e{i}", flush=True)
        await asyncio.sleep(0.005)  # spread over several windows: they end in waves
    await broker.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                 sys.argv[5]))
"""


async def _producer(url: str, first: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", PRODUCER, url, str(first), str(EVENTS), str(RECIPIENTS), WINDOW,
        stdout=asyncio.subprocess.PIPE)


def _spawn(args: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def _acked(lines: str) -> dict[str, str]:
    """Event -> recipient, for every notify call that answered."""
    return {m.group(2): m.group(1) for m in re.finditer(r"^ok (\S+) (\S+)$", lines, re.M)}


@pytest.mark.slow
@pytest.mark.timeout(420)  # a loaded shared machine; alone it takes ~30 s per backend
async def test_kill9_of_producers_and_releasers_loses_and_doubles_no_digest(
        database_url: str, tmp_path: Path) -> None:
    broker = Broker(storage_from_url(database_url), sweep_interval=None)
    await broker.start()
    sink = SmtpSink()
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.txt").write_text(
        "{{ count }}:{% for e in events %} {{ e.text }}{% endfor %}\n")
    procs: list[subprocess.Popen[bytes]] = []
    kills = 0
    try:
        for i in range(RECIPIENTS):
            await broker.recipients.put(f"r{i}", {"addresses": {
                "email": f"r{i}@example.com"}})
        with smtp_server(sink) as port:
            args = [sys.executable, "-m", "conveyor.cli.main", "notify", "worker",
                    "--database", database_url, "--smtp", f"127.0.0.1:{port}",
                    "--templates", str(templates), "--lanes", "2",
                    "--visibility-timeout", str(VISIBILITY)]
            log = (tmp_path / "workers.log").open("wb")
            procs = [_spawn(args, log) for _ in range(2)]

            async def kill_workers() -> None:
                # Workers release and send while the producers still add events (windows
                # end in waves); one is killed every KILL_EVERY seconds once digests flow.
                nonlocal kills
                while kills < KILLS:
                    await asyncio.sleep(KILL_EVERY)
                    if sink.messages:
                        victim = procs.pop(0)
                        os.kill(victim.pid, signal.SIGKILL)
                        victim.wait()
                        kills += 1
                        procs.append(_spawn(args, log))

            killer = asyncio.create_task(kill_workers())
            # The producer holding the windows is killed part way through its events ...
            first = await _producer(database_url, 0)
            assert first.stdout is not None
            seen: list[str] = []
            while len(seen) < EVENTS // 3:
                seen.append((await first.stdout.readline()).decode())
            first.kill()
            seen.append((await first.stdout.read()).decode())
            await first.wait()
            acked = _acked("".join(seen))
            assert EVENTS // 3 <= len(acked) < EVENTS
            # ... and another one adds to the same windows (they live in the database).
            second = await _producer(database_url, EVENTS)
            out, _ = await second.communicate()
            assert second.returncode == 0
            acked.update(_acked(out.decode()))
            assert len(acked) >= EVENTS + EVENTS // 3
            await asyncio.wait_for(killer, 120)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if set(_events_received(sink)[0]) >= set(acked):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2 * VISIBILITY)  # anything left over would show up now
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(30)
            log.close()
        resent = await broker.ledger.resent()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await broker.close()
    assert kills == KILLS
    got, recipient_of = _events_received(sink)
    lost = set(acked) - set(got)
    assert not lost, f"{len(lost)} events lost, e.g. {sorted(lost)[:5]}"
    merged_twice = {e: n for e, n in got.items() if n > 1}
    assert not merged_twice, f"events in two digests: {list(merged_twice.items())[:5]}"
    assert len(sink.message_ids) < len(acked), "no events were merged"
    for event, recipient in acked.items():
        assert recipient_of[event] == f"{recipient}@example.com"
    extra = sum(n - 1 for n in sink.message_ids.values())
    assert extra <= resent.get("email", 0), "a second copy no crash explains"
    unacked = set(got) - set(acked)  # at most the event in flight at the producer's kill
    assert len(unacked) <= 1
    print(f"\n{len(acked)} events in {len(sink.message_ids)} digest messages to "
          f"{RECIPIENTS} recipients; kill -9 x{kills} workers, x1 producer; extra copies "
          f"{extra}, resent {resent}")


def _events_received(sink: SmtpSink) -> tuple[Counter[str], dict[str, str]]:
    """How many distinct digest messages (by Message-ID) listed each event, and to whom
    each event went."""
    by_id: dict[str, tuple[str, list[str]]] = {}
    for _, rcpt, data in list(sink.messages):
        msg = email.message_from_bytes(data)
        body = msg.get_payload(decode=True)
        assert isinstance(body, bytes)
        count, _, events = body.decode().strip().partition(":")
        listed = events.split()
        assert int(count) == len(listed)
        by_id[str(msg["Message-ID"])] = (rcpt, listed)
    out: Counter[str] = Counter()
    to: dict[str, str] = {}
    for rcpt, listed in by_id.values():
        for event in listed:
            out[event] += 1
            to[event] = rcpt
    return out, to
