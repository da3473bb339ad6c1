"""`quiet_release_at`: when a message held by quiet hours may go, with a fixed clock, at
the daylight-saving edges of Europe/Berlin and America/New_York (2026)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor.recipients import QuietHours, quiet_release_at

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
NIGHT = QuietHours(time(22, 0), time(7, 0))


def utc(*args: int) -> int:
    """An instant given in UTC, in ms."""
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def window(start: str, end: str) -> QuietHours:
    h1, m1 = map(int, start.split(":"))
    h2, m2 = map(int, end.split(":"))
    return QuietHours(time(h1, m1), time(h2, m2))


@pytest.mark.parametrize(("zone", "quiet", "now", "release"), [
    # winter, no DST change: 23:30 CET -> 07:00 CET
    (BERLIN, NIGHT, utc(2026, 1, 10, 22, 30), utc(2026, 1, 11, 6, 0)),
    # after midnight, inside: 03:00 CET -> 07:00 CET the same day
    (BERLIN, NIGHT, utc(2026, 1, 11, 2, 0), utc(2026, 1, 11, 6, 0)),
    # start inclusive: 22:00 CET exactly is held
    (BERLIN, NIGHT, utc(2026, 1, 10, 21, 0), utc(2026, 1, 11, 6, 0)),
    # end exclusive, and outside the window: not held
    (BERLIN, NIGHT, utc(2026, 1, 11, 6, 0), None),
    (BERLIN, NIGHT, utc(2026, 1, 11, 11, 0), None),
    (BERLIN, NIGHT, utc(2026, 1, 10, 20, 59, 59), None),
    # a window inside one day
    (NEW_YORK, window("13:00", "15:00"), utc(2026, 6, 1, 17, 30), utc(2026, 6, 1, 19, 0)),
    (NEW_YORK, window("13:00", "15:00"), utc(2026, 6, 1, 19, 0), None),
    # Berlin springs forward on 29 March (02:00 CET -> 03:00 CEST, at 01:00 UTC): a night
    # window ends at 07:00 CEST, six real hours after 23:00 CET rather than eight
    (BERLIN, NIGHT, utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 5, 0)),
    # ... an end inside the skipped hour ends the window at the jump
    (BERLIN, window("23:00", "02:30"), utc(2026, 3, 28, 22, 30), utc(2026, 3, 29, 1, 0)),
    (BERLIN, window("23:00", "02:30"), utc(2026, 3, 29, 0, 59, 59), utc(2026, 3, 29, 1, 0)),
    # ... just after the jump the wall reads 03:00, past the end: not held
    (BERLIN, window("23:00", "02:30"), utc(2026, 3, 29, 1, 0), None),
    # ... a start inside the skipped hour: the window still holds from the jump
    (BERLIN, window("02:30", "05:00"), utc(2026, 3, 29, 1, 10), utc(2026, 3, 29, 3, 0)),
    # Berlin falls back on 25 October (03:00 CEST -> 02:00 CET, at 01:00 UTC): a night
    # window lasts one real hour longer
    (BERLIN, NIGHT, utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 6, 0)),
    # ... an end that happens twice: the first one, from before the fold
    (BERLIN, window("23:00", "02:30"), utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 0, 30)),
    # ... in the repeated hour (02:15 CET, the second time) the window is on again, to
    # the second 02:30
    (BERLIN, window("23:00", "02:30"), utc(2026, 10, 25, 1, 15), utc(2026, 10, 25, 1, 30)),
    # New York springs forward on 8 March (02:00 EST -> 03:00 EDT, at 07:00 UTC)
    (NEW_YORK, NIGHT, utc(2026, 3, 8, 3, 30), utc(2026, 3, 8, 11, 0)),
    (NEW_YORK, window("01:00", "02:30"), utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 0)),
    # New York falls back on 1 November (02:00 EDT -> 01:00 EST, at 06:00 UTC)
    (NEW_YORK, NIGHT, utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 12, 0)),
    (NEW_YORK, window("23:00", "01:30"), utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 5, 30)),
    (NEW_YORK, window("23:00", "01:30"), utc(2026, 11, 1, 6, 15), utc(2026, 11, 1, 6, 30)),
])
def test_release_at_dst_edges(zone: ZoneInfo, quiet: QuietHours, now: int,
                              release: int | None) -> None:
    assert quiet_release_at(quiet, zone, now) == release


def _wall(ms: int, zone: ZoneInfo) -> time:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).time().replace(
        tzinfo=None)


@pytest.mark.parametrize("zone_name", ["Europe/Berlin", "America/New_York",
                                       "Australia/Lord_Howe", "America/Santiago", "UTC"])
def test_release_is_the_first_instant_outside_the_window(zone_name: str) -> None:
    """For instants sampled over two years (dense around each DST change): not held means
    the wall clock is outside the window; held means every second until the release is
    inside it, and the release itself is outside (so nothing is dropped or held past the
    window's end)."""
    zone = ZoneInfo(zone_name)
    rng = random.Random(zone_name)
    start = utc(2026, 1, 1)
    year_ms = 2 * 365 * 86_400_000
    for _ in range(400):
        h1, h2 = rng.sample(range(24 * 4), 2)
        quiet = QuietHours(time(h1 // 4, h1 % 4 * 15), time(h2 // 4, h2 % 4 * 15))
        now = start + rng.randrange(year_ms) // 1000 * 1000
        release = quiet_release_at(quiet, zone, now)
        if release is None:
            assert not quiet.contains(_wall(now, zone))
            continue
        assert quiet.contains(_wall(now, zone))
        assert release > now and release - now <= 25 * 3_600_000
        assert not quiet.contains(_wall(release, zone))
        # Every 5 minutes before the release the window is still on.
        step = 300_000
        for at in range(now, release, step):
            assert quiet.contains(_wall(at, zone)), (quiet, now, at, release)
        assert quiet.contains(_wall(release - 1000, zone))


def test_dst_transitions_are_sampled() -> None:
    """The random sample above would miss the rare edges, so walk each 2026 transition
    of the two zones minute by minute with a window around it."""
    for zone, day in ((BERLIN, datetime(2026, 3, 29)), (BERLIN, datetime(2026, 10, 25)),
                      (NEW_YORK, datetime(2026, 3, 8)), (NEW_YORK, datetime(2026, 11, 1))):
        for end in ("01:30", "02:00", "02:30", "03:00", "03:30"):
            quiet = window("00:45", end)
            at = int((day.replace(tzinfo=zone) - timedelta(hours=1)).timestamp() * 1000)
            for minute in range(6 * 60):
                now = at + minute * 60_000
                release = quiet_release_at(quiet, zone, now)
                inside = quiet.contains(_wall(now, zone))
                assert (release is not None) == inside
                if release is not None:
                    assert release > now
                    assert not quiet.contains(_wall(release, zone))
                    assert quiet.contains(_wall(release - 1000, zone))
