"""The recipient million (`conveyor demo --recipients N`): N people imported in bulk, then
one bulk notify of the demo's category to all of them (`conveyor.notify.segment`).

Person i has one address, on the channel whose index range holds i (the demo's mix), and
falls in one of three groups: i % 10 == 0 opted out of the category on that channel
(skipped, with a `none` row saying nothing is left), i % 10 in (1, 2) inside quiet hours
that end at `release_ms` in their own time zone (held, then released), the rest plain
(delivered now). Web Push is left out: a recipient's push address must be an https://
endpoint, and the demo's push peer is plain HTTP on loopback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson

from conveyor.demo.mobile_peers import apns_token, fcm_token
from conveyor.demo.workload import data, email_address
from conveyor.notify import Apns, Email, Fcm
from conveyor.notify.segment import SegmentCounts, notify_segment
from conveyor.recipients import Category

if TYPE_CHECKING:
    from conveyor.notify.notifier import Notifier

__all__ = ["CATEGORY", "PeopleRun", "deliverable", "import_people", "notify_everyone",
           "plain_build_seconds", "release_after"]

CATEGORY = Category("demo")
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney",
         "Asia/Kolkata")
"""Time zones the people live in (Kolkata: a half-hour offset)."""


def group(i: int) -> str:
    """Person i's group: `opted out`, `quiet` or `plain`."""
    return "opted out" if i % 10 == 0 else "quiet" if i % 10 in (1, 2) else "plain"


def deliverable(i: int) -> bool:
    """Whether person i's notification is to be delivered (now or after the hold)."""
    return i % 10 != 0


def recipient_id(i: int) -> str:
    """Person i's id (ids sort as the indexes do)."""
    return f"r{i:08d}"


def index_of(rid: str) -> int:
    """The index of a demo recipient id."""
    return int(rid[1:])


def release_after(now_ms: int, hold_seconds: float) -> int:
    """The first whole minute at least `hold_seconds` after now (quiet hours are HH:MM)."""
    at = now_ms + int(hold_seconds * 1000)
    return -(-at // 60_000) * 60_000


def _window(zone: str, now_ms: int, release_ms: int) -> dict[str, str]:
    """Quiet hours from an hour before now to `release_ms`, on the zone's wall clock."""
    tz = ZoneInfo(zone)
    start = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(tz) - timedelta(hours=1)
    end = datetime.fromtimestamp(release_ms / 1000, UTC).astimezone(tz)
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


def _address(channel: str, i: int) -> str:
    return email_address(i) if channel == "email" else fcm_token(i) if channel == "fcm" \
        else apns_token(i)


def lines(spans: list[tuple[str, int, int]], quiet: bool, now_ms: int,
          release_ms: int) -> Iterator[str]:
    """JSON lines of the people in `spans` ((channel, first index, count)): the quiet
    group when `quiet`, else everyone else."""
    windows = {z: _window(z, now_ms, release_ms) for z in ZONES}
    for channel, first, count in spans:
        for i in range(first, first + count):
            if (group(i) == "quiet") != quiet:
                continue
            zone = ZONES[i % len(ZONES)]
            doc: dict[str, Any] = {"id": recipient_id(i), "timezone": zone,
                                   "addresses": {channel: [_address(channel, i)]}}
            if group(i) == "opted out":
                doc["preferences"] = {CATEGORY.name: {channel: False}}
            elif quiet:
                doc["quiet_hours"] = windows[zone]
            yield orjson.dumps(doc).decode()


class PeopleRun:
    """What the recipient run measured, for the report."""

    def __init__(self, people: int) -> None:
        self.people = people
        self.import_seconds = 0.0
        self.release_ms = 0
        self.counts = SegmentCounts()
        self.notify_seconds = 0.0
        self.plain_build_us = 0.0
        self.rest_seconds: float | None = None
        self.held_before_release: int | None = None
        self.all_seconds = 0.0
        self.started_ms = 0

    def lines(self) -> list[str]:
        """The report's lines about recipients."""
        c = self.counts
        n = max(c.notifications, 1)
        us = {k: v / n * 1e6 for k, v in c.cpu.items()}
        step = us.get("fan_out", 0.0) - self.plain_build_us + sum(
            us.get(k, 0.0) for k in ("suppression", "decide", "links", "skips"))
        plain = self.plain_build_us + us.get("enqueue", 0.0)
        release = (self.release_ms - self.started_ms) / 1000
        out = [
            f"  recipients        {self.people:,} imported in {self.import_seconds:.1f} s = "
            f"{self.people / max(self.import_seconds, 1e-9):,.0f} recipients/s",
            f"  notify            {c.people:,} people in one bulk notify, "
            f"{self.notify_seconds:.1f} s: {c.queued:,} queued, {c.held:,} held (quiet "
            f"hours), skipped: " + ", ".join(f"{v:,} {k}" for k, v in
                                             sorted(c.skipped.items())),
            "  step cost         CPU us per notification (producer process): " +
            ", ".join(f"{k} {v:.1f}" for k, v in us.items()),
            f"                    plain path (build {self.plain_build_us:.1f} + ledger and "
            f"queue {us.get('enqueue', 0.0):.1f}) = {plain:.1f} us; preference + quiet-hour "
            f"step {step:.1f} us on top ({(plain + step) / max(plain, 1e-9):.2f}x the plain "
            "path)"]
        rest = (f"{self.rest_seconds:.1f} s after the notify began" if self.rest_seconds
                is not None else "not before the window ended")
        out.append(f"  delivered now     {c.queued:,} (the plain group): all sent {rest}")
        held = ("not sampled" if self.held_before_release is None else
                f"{self.held_before_release:,} still held 1 s before it")
        out.append(f"  held, released    {c.held:,} until their quiet hours ended at "
                   f"+{release:.0f} s ({held}); all sent by +{self.all_seconds:.1f} s")
        return out


async def import_people(broker: Any, spans: list[tuple[str, int, int]], run: PeopleRun,
                        hold_seconds: float, out: Callable[[str], None]) -> None:
    """Import everyone but the quiet group, then (with the window's end now known) the
    quiet group; record the rate and the release time."""
    started = time.perf_counter()
    done = await broker.recipients.import_lines(lines(spans, False, 0, 0))
    rate = done / max(time.perf_counter() - started, 1e-9)
    quiet = sum(1 for _, first, count in spans for i in range(first, first + count)
                if group(i) == "quiet")
    now = int(time.time() * 1000)
    # The window must still be open when the notify starts, after the quiet group's import.
    run.release_ms = release_after(now, hold_seconds + quiet / rate)
    done += await broker.recipients.import_lines(lines(spans, True, now, run.release_ms))
    run.import_seconds = time.perf_counter() - started
    out(f"imported {done:,} recipients in {run.import_seconds:.1f} s "
        f"({done / run.import_seconds:,.0f}/s)")


def plain_build_seconds(notifier: Notifier, spans: list[tuple[str, int, int]],
                        sample: int = 20_000) -> float:
    """CPU seconds per notification of building the same notifications the plain way
    (`Notifier.items`), on a sample, sending nothing: the plain path's first step."""
    notes: list[Any] = []
    for channel, first, count in spans:
        for i in range(first, first + min(count, sample // len(spans) + 1)):
            n = _address(channel, i)
            notes.append(Email(to=n, template="demo", data=data(i)) if channel == "email"
                         else Fcm(token=n, template="demo", data=data(i))
                         if channel == "fcm" else Apns(token=n, template="demo",
                                                       data=data(i)))
    started = time.process_time()
    notifier.items(notes)
    return (time.process_time() - started) / max(len(notes), 1)


async def notify_everyone(notifier: Notifier, run: PeopleRun,
                          progress: Callable[[int], None]) -> None:
    """The one bulk notify of the demo's category to everyone stored."""
    started = time.perf_counter()
    run.started_ms = int(time.time() * 1000)
    run.counts = await notify_segment(
        notifier, CATEGORY, "demo", personal=lambda r: data(index_of(r.id)),
        progress=lambda c: progress(c.people))
    run.notify_seconds = time.perf_counter() - started
