"""The cron scheduler: enqueue each tick of each schedule exactly once, however many run.

Every worker process runs one (unless told not to). For each due tick a scheduler asks the
database to claim `(schedule, tick)`; only the one that wins enqueues the job, with a
deduplication id as a second guard. Missed ticks: a scheduler enqueues any tick not older
than `grace` seconds (so a restart or a slow loop still fires it, late; at start only the
latest, so a schedule of seconds does not burst); ticks missed for longer, while no
scheduler ran, are skipped, never backfilled.

A claim is a lease (`broker.jobs.cron_lease`), reported sent once the job is: a scheduler
killed between its claim and its send would otherwise leave the tick claimed and never
sent. A claim not reported sent within `LEASE` seconds is taken over by the next
scheduler that asks: one that lost the tick to a pending claim asks again once the lease
may have lapsed, and every claim's answer lists the schedule's other lapsed ticks (so a
scheduler started after the kill takes them over too). If the first claimer did send
after all (it was only slow), the second send carries the same deduplication id within
the queue's 5-minute window, which the database bounds the takeover to, and is dropped.

Schedules are 5-field cron, 6-field cron with seconds first, or fixed intervals (`every`)
whose ticks are the multiples of the interval since the epoch, so every scheduler agrees on
them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from croniter import croniter

from conveyor.client.source import Source
from conveyor.clock import Clock, system_clock
from conveyor.errors import InvalidInput
from conveyor.jobs import CRON_LEASE_SECONDS, CRON_RECLAIM_MS, CronLease
from conveyor.reach import Reach
from conveyor.worker.app import App, CronEntry

log = logging.getLogger("conveyor.cron")

LEASE = CRON_LEASE_SECONDS
"""Seconds a won tick may go unreported before another scheduler takes it over."""


def ticks_between(entry: CronEntry, after_ms: int, until_ms: int) -> list[int]:
    """The schedule's ticks in `(after_ms, until_ms]`, as ms since the epoch."""
    if entry.every_ms is not None:
        first = (after_ms // entry.every_ms + 1) * entry.every_ms
        return list(range(first, until_ms + 1, entry.every_ms))
    found: list[int] = []
    it = _iterate(entry, after_ms)
    while True:
        tick = round(it.get_next(float) * 1000)
        if tick > until_ms:
            return found
        found.append(tick)


def next_tick(entry: CronEntry, after_ms: int) -> int:
    """The first tick after `after_ms`."""
    if entry.every_ms is not None:
        return (after_ms // entry.every_ms + 1) * entry.every_ms
    return round(_iterate(entry, after_ms).get_next(float) * 1000)


def _iterate(entry: CronEntry, after_ms: int) -> croniter:
    if entry.expression is None:
        raise ValueError(f"{entry.describe()} is an interval, not a cron expression")
    start = datetime.fromtimestamp(after_ms / 1000, entry.tz)
    return croniter(entry.expression, start, second_at_beginning=True)


class Scheduler:
    """Enqueues an App's cron jobs. `clock` (ms) and `sleep` are injectable for tests;
    `lease`: seconds a won tick may go unreported as sent (default: this module's
    `LEASE`, read when the scheduler is made); `reach`: the worker's, told of failures."""

    def __init__(self, app: App, source: Source, *, clock: Clock | None = None,
                 grace: float = 60.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 lease: float | None = None, reach: Reach | None = None) -> None:
        self.app = app
        self.source = source
        self.clock = clock or app.clock or system_clock
        self.grace_ms = int(grace * 1000)
        self.lease = LEASE if lease is None else lease
        self._sleep = sleep
        self._checked: dict[str, int] = {}
        # (schedule, tick) lost to a claim not yet reported sent -> when to ask again
        self._watched: dict[tuple[str, int], int] = {}
        self._plain = False  # the server knows no leases (see _claim)
        self.reach = reach or Reach()

    async def tick(self) -> int:
        """Enqueue every due tick this scheduler wins, and every lapsed claim it takes
        over; returns how many it enqueued."""
        now = self.clock()
        enqueued = 0
        for entry in self.app.crons:
            checked = self._checked.get(entry.schedule)
            since = now - self.grace_ms if checked is None else max(checked,
                                                                      now - self.grace_ms)
            due = ticks_between(entry, since, now)
            if checked is None:
                due = due[-1:]  # at start, only the latest missed tick
            for tick in due:
                enqueued += await self._fire(entry, tick)
            self._checked[entry.schedule] = now
        return enqueued + await self._take_over(now)

    async def _take_over(self, now: int) -> int:
        """Claim again the watched ticks that are due (their lease may have lapsed); the
        answers may name more lapsed ticks, due at once."""
        entries = {e.schedule: e for e in self.app.crons}
        enqueued = 0
        while due := [k for k, at in self._watched.items() if at <= now]:
            for key in due:
                del self._watched[key]
                entry = entries.get(key[0])
                # The database takes over a claim only within its window: older ones are
                # not asked about again (nor can they be sent twice).
                if entry is not None and key[1] > now - CRON_RECLAIM_MS:
                    enqueued += await self._fire(entry, key[1])
        return enqueued

    async def _claim(self, entry: CronEntry, tick: int) -> CronLease:
        """A lease claim; a plain one, final, from a server too old to know leases (a
        worker upgraded before its server must still fire its schedules)."""
        if not self._plain:
            try:
                return await self.source.jobs.cron_lease(entry.schedule, tick, self.lease)
            except InvalidInput as exc:
                if exc.field not in ("lease_seconds", None):
                    raise
                log.warning("the server does not know cron leases (an older version): "
                            "claiming cron ticks without them")
                self._plain = True
        return CronLease(await self.source.jobs.cron_claim(entry.schedule, tick))

    async def _fire(self, entry: CronEntry, tick: int) -> int:
        """Claim one tick and, if won, send its job and report it sent; 1 if sent."""
        lease = await self._claim(entry, tick)
        for lapsed in lease.lapsed:  # another scheduler claimed these and never sent them
            self._watched[(entry.schedule, lapsed)] = 0
        if not lease.claimed:
            if lease.pending:  # its claimer may yet send it, or may have died: look again
                self._watched[(entry.schedule, tick)] = self.clock() + int(self.lease * 1000)
            return 0
        digest = hashlib.sha1(entry.schedule.encode()).hexdigest()[:20]
        call = entry.task.call((), {}, deduplication_id=f"cron-{digest}-{tick}")
        await self.app.send([call])
        if self._plain:
            return 1
        try:
            await self.source.jobs.cron_sent(entry.schedule, tick)
        except Exception as exc:  # the lease lapses and the tick is sent again: deduplicated
            self.reach.error(exc, "reporting cron tick %s of %s sent failed", tick,
                             entry.describe(), logger=log)
        return 1

    def seconds_to_next(self) -> float:
        """How long until the next tick of any schedule (or a watched claim's lapse)."""
        now = self.clock()
        nearest = min((next_tick(e, now) for e in self.app.crons), default=now + 60_000)
        nearest = min(nearest, *self._watched.values()) if self._watched else nearest
        return max(0.0, (nearest - now) / 1000)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set."""
        while not stop.is_set():
            pause = 0.0
            asked = self.reach.now()
            try:
                await self.tick()
            except Exception as exc:
                self.reach.error(exc, "cron tick failed; trying again shortly", logger=log)
                pause = 1.0  # (ticks left watched are due now: not a busy loop)
            else:
                self.reach.ok(asked)
            wait = min(max(self.seconds_to_next() + 0.01, pause), 30.0)
            sleeper = asyncio.ensure_future(self._sleep(wait))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait([sleeper, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
