"""The small in-server time series behind the dashboard and `/metrics`.

A `Monitor` watches one broker: it counts messages sent, received and deleted per queue (a
`Broker.observers` hook, so counts are this process's), and every `interval` seconds it
samples the depth of every queue holding messages (`Broker.all_queue_stats`) into a ring of
`keep` points per queue. Rates are per second over the last interval. Nothing here is
shared between nodes: each `conveyor serve` process shows what it saw.

Idle cost grows with the active queues, not with all of them: a sample appends points only
for queues that hold messages, saw traffic here since the last sample, or were active in
the one before (so a queue is seen going back to zero); an idle queue's figures stay at
its last point (zeros). The list of queues (names, attributes) is re-read only when it
changed (`Broker.queue_catalog_stamp`, one cheap query a sample), when a queue not yet
known holds messages, and every `catalog_seconds` whatever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from conveyor.broker.broker import Broker
from conveyor.models import Queue, QueueStats
from conveyor.reach import Reach
from conveyor.tasks import stop_task

log = logging.getLogger("conveyor.dashboard")

EVENTS = ("sent", "received", "deleted")
"""The events counted per queue (see `conveyor.broker.broker.BrokerObserver`)."""

DEFAULT_INTERVAL = 2.0
DEFAULT_KEEP = 900  # half an hour at 2 s
DEFAULT_CATALOG_SECONDS = 60.0  # the stamp misses a change within the same millisecond


@dataclass(frozen=True, slots=True)
class Point:
    """One sample of one queue: counts, oldest age and rates per second."""

    at: float  # seconds since the epoch
    visible: int
    in_flight: int
    delayed: int
    dead_letters: int
    oldest_age_seconds: float | None
    send_rate: float
    receive_rate: float

    @property
    def busy(self) -> bool:
        """Holds messages or saw traffic in its interval."""
        return bool(self.visible or self.in_flight or self.delayed or self.dead_letters
                    or self.send_rate or self.receive_rate)

    def to_json(self) -> dict[str, float | int | None]:
        """Plain JSON form (a chart point)."""
        return {"at": round(self.at, 3), "visible": self.visible, "in_flight": self.in_flight,
                "delayed": self.delayed, "dead_letters": self.dead_letters,
                "oldest_age_seconds": self.oldest_age_seconds,
                "send_rate": round(self.send_rate, 3),
                "receive_rate": round(self.receive_rate, 3)}


@dataclass(slots=True)
class Snapshot:
    """Every queue at one moment, by name, with its latest point."""

    at: float = 0.0
    queues: dict[str, Queue] = field(default_factory=dict)
    points: dict[str, Point] = field(default_factory=dict)
    """Latest points of the active queues only (an idle queue's figures are zeros)."""
    names: list[str] = field(default_factory=list)
    """Every queue's name, sorted (for paging)."""


class Counters:
    """Totals per queue name and event, fed by the broker's observer hook."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(EVENTS, 0))
        self.listeners: list[Callable[[str, str, int], None]] = []
        """Also told `(event, queue name, count)`: the Prometheus counters hang here."""
        self.touched: set[str] = set()
        """Queues counted since the monitor last took this set."""

    def __call__(self, event: str, queue: Queue, count: int) -> None:
        if event in EVENTS and count:
            self.totals[queue.name][event] += count
            self.touched.add(queue.name)
            for listener in self.listeners:
                listener(event, queue.name, count)

    def get(self, name: str, event: str) -> int:
        """The total of one event on one queue (0 when never seen)."""
        found = self.totals.get(name)
        return found[event] if found else 0


class Monitor:
    """Counts, samples and keeps the recent history of every queue of a broker."""

    def __init__(self, broker: Broker, *, interval: float = DEFAULT_INTERVAL,
                 keep: int = DEFAULT_KEEP,
                 catalog_seconds: float = DEFAULT_CATALOG_SECONDS) -> None:
        self.broker = broker
        self.interval = interval
        self.keep = keep
        self.catalog_seconds = catalog_seconds
        self.counters = Counters()
        self.history: dict[str, deque[Point]] = {}
        self.latest = Snapshot()
        self.dead_lettered: dict[str, int] = defaultdict(int)
        """Messages seen arriving in dead-letter queues, by source queue (from rises of
        `QueueStats.dead_letters` between samples: redrives and purges in the same interval
        hide some)."""
        self._previous: dict[str, tuple[int, int]] = {}
        self._last: dict[str, Point] = {}  # each queue's latest point, active or not since
        self._catalog: dict[str, Queue] = {}
        self._ids: dict[int, str] = {}
        self._names: list[str] = []
        self._catalog_at = float("-inf")  # monotonic
        self._catalog_stamp: tuple[int, tuple[int, int]] | None = None  # when it was read
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        broker.observers.append(self.counters)

    # lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Sample in the background (idempotent; needs a running loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="conveyor-monitor")

    async def stop(self) -> None:
        """Stop sampling and unhook from the broker."""
        task, self._task = self._task, None
        await stop_task(task)
        with contextlib.suppress(ValueError):
            self.broker.observers.remove(self.counters)

    async def _run(self) -> None:
        # An outage (an SQLite file deleted under the server refuses reads until a
        # restart) is logged as the other loops log one (`conveyor.reach`), not a
        # traceback every interval; any other error keeps its traceback.
        reach = Reach("the database")
        while True:
            asked = reach.now()
            try:
                await self.sample()
            except Exception as exc:  # the dashboard must outlive a database hiccup
                reach.error(exc, "sampling queue stats failed", logger=log)
            else:
                reach.ok(asked)
            await asyncio.sleep(self.interval)

    # sampling -----------------------------------------------------------------------
    async def current(self) -> Snapshot:
        """The latest snapshot, sampled now when older than the interval."""
        if time.time() - self.latest.at >= self.interval:
            async with self._lock:
                if time.time() - self.latest.at >= self.interval:
                    await self.sample()
        return self.latest

    async def sample(self) -> Snapshot:
        """Read the counts of every queue holding messages (and of those with traffic here,
        or active last time) and append a point to each of their histories."""
        now = time.time()
        stats = await self.broker.all_queue_stats()
        queues = await self._queues(stats)
        elapsed = max(now - self.latest.at, 1e-3) if self.latest.at else None
        touched, self.counters.touched = self.counters.touched, set()
        active = {self._ids[i] for i in stats if i in self._ids} | touched
        active |= self.latest.points.keys()  # record their fall back to zero once
        points: dict[str, Point] = {}
        empty = QueueStats()
        for name in active:
            queue = queues.get(name)
            if queue is None:
                continue
            s = stats.get(queue.id, empty)
            sent = self.counters.get(name, "sent")
            received = self.counters.get(name, "received")
            before = self._previous.get(name)
            rates = (0.0, 0.0) if before is None or elapsed is None else (
                (sent - before[0]) / elapsed, (received - before[1]) / elapsed)
            self._previous[name] = (sent, received)
            point = Point(now, s.visible, s.in_flight, s.delayed, s.dead_letters,
                          s.oldest_age_seconds, max(rates[0], 0.0), max(rates[1], 0.0))
            previous = self._last.get(name)
            if previous is not None:
                before_dead: int | None = previous.dead_letters
            else:  # idle (no dead letters) at the last sample if it existed then
                before_dead = 0 if self.latest.at and name in self.latest.queues else None
            if before_dead is not None and point.dead_letters > before_dead:
                self.dead_lettered[name] += point.dead_letters - before_dead
            self._last[name] = point
            if point.busy or name in touched:
                points[name] = point
            ring = self.history.get(name)
            if ring is None:
                ring = self.history[name] = deque(maxlen=self.keep)
            ring.append(point)
        self.latest = Snapshot(now, queues, points, self._names)
        async with self._changed:
            self._changed.notify_all()
        return self.latest

    async def _queues(self, stats: dict[int, QueueStats]) -> dict[str, Queue]:
        """Every queue by name, re-read when stale, changed here, or missing one."""
        age = time.monotonic() - self._catalog_at
        stamp = (self.broker.queue_changes, await self.broker.queue_catalog_stamp())
        if (age >= self.catalog_seconds or stamp != self._catalog_stamp
                or (age >= 2 * self.interval and any(i not in self._ids for i in stats))):
            self._catalog_stamp = stamp
            self._catalog = await self._all_queues()
            self._catalog_at = time.monotonic()
            self._ids = {q.id: name for name, q in self._catalog.items()}
            self._names = sorted(self._catalog)
            for gone in set(self._last) - set(self._catalog):
                self.history.pop(gone, None)
                self._previous.pop(gone, None)
                del self._last[gone]
        return self._catalog

    async def wait_for_sample(self, timeout: float) -> Snapshot:
        """The next snapshot, or the latest one after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with self._changed:
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.latest

    async def _all_queues(self) -> dict[str, Queue]:
        return {q.name: q for q in await self.broker.all_queues()}

    def series(self, name: str) -> list[Point]:
        """The recent points of one queue, oldest first."""
        return list(self.history.get(name, ()))
