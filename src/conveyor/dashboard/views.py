"""What the dashboard's pages show, as plain data for the templates and the live feed.

`Section` is the hook for figures from other rooms: `conveyor.http.dashboard` shows every
section a provider in `app.state.dashboard_sections` returns (workers, jobs, notification
deliveries). `job_section` is the one for `broker.jobs`; a notification ledger adds its own.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import orjson

from conveyor.broker.broker import Broker
from conveyor.dashboard.series import Point, Snapshot
from conveyor.models import Queue, SnapshotHold

HERE = Path(__file__).parent
STATIC = HERE / "static"
PEEK_LIMIT = 20
PAGE_SIZE = 100
"""Queues on one page of the dashboard's table (and in its live feed)."""
BODY_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Section:
    """A titled block of figures: rows of (label, value), with an optional note."""

    title: str
    rows: Sequence[tuple[str, str | int | float]]
    note: str = ""
    id: str = ""


SectionProvider = Callable[[Broker], Awaitable[Section | None]]
"""Returns a section to show on the front page, or None to show nothing."""


@dataclass(slots=True)
class QueueRow:
    """One line of the queues table."""

    name: str
    visible: int = 0
    in_flight: int = 0
    delayed: int = 0
    dead_letters: int = 0
    oldest_age_seconds: float | None = None
    send_rate: float = 0.0
    receive_rate: float = 0.0
    paused: bool = False
    fifo: bool = False
    dead_letter_queue: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def live(self) -> list[Any]:
        """The compact form the live feed sends (see dashboard.js `COLUMNS`)."""
        return [self.name, self.visible, self.in_flight, self.delayed, self.dead_letters,
                self.oldest_age_seconds, round(self.send_rate, 2),
                round(self.receive_rate, 2), self.paused]


@dataclass(frozen=True, slots=True)
class QueuePage:
    """One page of the queues table: its rows, how many queues there are and match, and
    where the next page starts (None: this is the last)."""

    rows: list[QueueRow]
    total: int
    matching: int
    prefix: str = ""
    after: str | None = None
    next_after: str | None = None

    def json(self) -> dict[str, Any]:
        """What the live feed sends (rows compact, see dashboard.js `COLUMNS`)."""
        return {"rows": [r.live() for r in self.rows], "total": self.total,
                "matching": self.matching}


def queue_rows(snapshot: Snapshot, prefix: str = "", after: str | None = None,
               limit: int = PAGE_SIZE) -> QueuePage:
    """Up to `limit` queues by name, those starting with `prefix`, after the name `after`
    (the dashboard shows queues a page at a time, so 10,000 of them stay a small page)."""
    names = snapshot.names
    first = bisect.bisect_left(names, prefix)
    above = _successor(prefix)
    end = bisect.bisect_left(names, above) if above else len(names)
    start = max(first, bisect.bisect_right(names, after)) if after else first
    chosen = names[start:min(end, start + limit)]
    rows = [queue_row(snapshot.queues[n], snapshot.points.get(n)) for n in chosen]
    more = start + limit < end
    return QueuePage(rows, len(names), end - first, prefix, after,
                     chosen[-1] if more and chosen else None)


def _successor(prefix: str) -> str | None:
    """The least string above every string starting with `prefix` (None: no bound)."""
    if not prefix or ord(prefix[-1]) >= 0x10FFFF:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def queue_row(queue: Queue, point: Point | None) -> QueueRow:
    """One queue's line from its latest point (zeros before the first sample)."""
    a = queue.attributes
    row = QueueRow(queue.name, paused=a.paused, fifo=a.fifo,
                   dead_letter_queue=a.dead_letter_queue, tags=dict(a.tags))
    if point is not None:
        row.visible, row.in_flight, row.delayed = point.visible, point.in_flight, point.delayed
        row.dead_letters, row.oldest_age_seconds = point.dead_letters, point.oldest_age_seconds
        row.send_rate, row.receive_rate = point.send_rate, point.receive_rate
    return row


async def job_section(broker: Broker) -> Section | None:
    """Job statuses from `broker.jobs`, when the storage keeps them."""
    jobs = getattr(broker, "jobs", None)
    if jobs is None:
        return None
    try:
        counts: dict[str, int] = await jobs.status_counts()
    except Exception:  # no job table (older schema) or a hiccup: show nothing
        return None
    return Section("Jobs", [(status, count) for status, count in counts.items()],
                   "Tracked job statuses across all workers (kept for a while after "
                   "they finish).", id="jobs")


async def delivery_section(broker: Broker) -> Section | None:
    """Notification deliveries by channel and status, from the ledger (`broker.ledger`)."""
    counts = await delivery_counts(broker)
    if not counts:
        return None
    rows = [(f"{channel} · {status}", count) for channel, statuses in sorted(counts.items())
            for status, count in statuses.items()]
    return Section("Notification deliveries", rows,
                   "Per channel, from the delivery ledger (kept for a while after sending).",
                   id="deliveries")


async def delivery_counts(broker: Broker) -> dict[str, dict[str, int]]:
    """{channel: {status: count}} from the ledger, or {} when there is none."""
    ledger = getattr(broker, "ledger", None)
    if ledger is None:
        return {}
    try:
        counts: dict[str, dict[str, int]] = await ledger.counts()
    except Exception:  # no ledger table (older schema) or a hiccup: show nothing
        return {}
    return counts


async def worker_section(broker: Broker) -> Section | None:
    """Live workers and the jobs they run (`broker.workers`); the workers page has more."""
    try:
        found = await broker.workers.list()
    except Exception:  # no workers table (older schema) or a hiccup: show nothing
        return None
    return Section("Workers", [("live workers", len(found)),
                               ("running jobs", sum(w.running for w in found)),
                               ("can run at once", sum(w.concurrency for w in found))],
                   "Worker processes that reported within their heartbeat's TTL; see the "
                   "Workers page.", id="workers")


async def table_section(broker: Broker) -> Section | None:
    """How big conveyor's tables are and how much of them is dead weight."""
    try:
        tables = await broker.table_health()
    except Exception:  # figures are optional; the page must not fail
        return None
    if not tables:
        return None
    rows: list[tuple[str, str | int | float]] = []
    for t in tables:
        if t.live_rows is None:  # SQLite: the file and its WAL
            free = f", {size(t.free_bytes)} free for reuse" if t.free_bytes else ""
            rows.append((t.table, f"{size(t.bytes)}{free}"))
        elif t.bytes or t.dead_rows:
            share = t.dead_rows / max(1, t.live_rows + t.dead_rows)
            rows.append((t.table, f"{size(t.bytes)} · {t.live_rows} live, {t.dead_rows} dead "
                                  f"({share:.0%})"))
    note = ("Table sizes with indexes, and rows deleted but not yet reclaimed; conveyor "
            "rotates and vacuums its busy tables itself.")
    with contextlib.suppress(Exception):  # optional, as the figures above
        hold = await broker.snapshot_hold()
        if hold is not None and (hold.seconds is None or hold.seconds >= HOLD_SHOWN):
            rows.append(("held back by", holder(hold)))
            note += (" A long transaction or reader keeps dead weight from being reclaimed "
                     "until it ends (on SQLite the WAL grows with every write meanwhile).")
    return Section("Storage", rows, note, id="storage")


HOLD_SHOWN = 10.0
"""Seconds an open snapshot must have held back cleanup before the dashboard names it
(conveyor's own transactions and readers last milliseconds)."""


def holder(hold: SnapshotHold) -> str:
    """`a transaction (backend pid 4242, psql) open 7m 12s`: on PostgreSQL the server's
    process for that session (`pg_terminate_backend` ends it), not its client's."""
    pid = "" if not hold.pid else (
        f"pid {hold.pid}" if hold.kind == "reader" else f"backend pid {hold.pid}")
    who = ", ".join(x for x in (pid, hold.application or "") if x)
    held = f" open {age(hold.seconds)}" if hold.seconds is not None else ""
    return f"a {hold.kind}{f' ({who})' if who else ''}{held}"


DEFAULT_SECTIONS: tuple[SectionProvider, ...] = (worker_section, job_section, delivery_section,
                                                 table_section)


# formatting -------------------------------------------------------------------------
def size(n: int) -> str:
    """`512 B`, `3.2 MB`, `1.4 GB`."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def age(seconds: float | None) -> str:
    """`42s`, `3m 05s`, `2h 10m`, `4d 3h`; an en dash for none."""
    if seconds is None:
        return "–"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def rate(per_second: float) -> str:
    """Messages per second, briefly."""
    if per_second == 0:
        return "0"
    return f"{per_second:.1f}" if per_second < 100 else f"{per_second:,.0f}"


def when(ms: int | None) -> str:
    """A time in ms since the epoch, as UTC."""
    if ms is None:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def clip(text: str | None, limit: int = BODY_CHARS) -> str:
    """At most `limit` characters, saying how many more there were."""
    if text is None:
        return ""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def pretty(value: Any) -> str:
    """A JSON value, indented (a string as it is)."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def environment() -> jinja2.Environment:
    """The templates, autoescaped (every value shown is escaped unless marked safe)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined, enable_async=False)
    env.filters.update(age=age, rate=rate, when=when, clip=clip, pretty=pretty)
    return env
