"""The cron scheduler: enqueue each tick of each schedule exactly once, however many run.

Every worker process runs one (unless told not to). For each due tick a scheduler asks the
database to claim `(schedule, tick)`; only the one that wins enqueues the job, with a
deduplication id as a second guard. Missed ticks: a scheduler enqueues any tick not older
than `grace` seconds (so a restart or a slow loop still fires it, late; at start only the
latest, so a schedule of seconds does not burst); ticks missed for longer, while no
scheduler ran, are skipped, never backfilled.

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
from conveyor.worker.app import App, CronEntry

log = logging.getLogger("conveyor.cron")


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
    """Enqueues an App's cron jobs. `clock` (ms) and `sleep` are injectable for tests."""

    def __init__(self, app: App, source: Source, *, clock: Clock | None = None,
                 grace: float = 60.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.app = app
        self.source = source
        self.clock = clock or app.clock or system_clock
        self.grace_ms = int(grace * 1000)
        self._sleep = sleep
        self._checked: dict[str, int] = {}

    async def tick(self) -> int:
        """Enqueue every due tick this scheduler wins; returns how many it enqueued."""
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
                if await self.source.jobs.cron_claim(entry.schedule, tick):
                    digest = hashlib.sha1(entry.schedule.encode()).hexdigest()[:20]
                    call = entry.task.call((), {}, deduplication_id=f"cron-{digest}-{tick}")
                    await self.app.send([call])
                    enqueued += 1
            self._checked[entry.schedule] = now
        return enqueued

    def seconds_to_next(self) -> float:
        """How long until the next tick of any schedule."""
        now = self.clock()
        nearest = min((next_tick(e, now) for e in self.app.crons), default=now + 60_000)
        return max(0.0, (nearest - now) / 1000)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("cron tick failed; trying again shortly")
            wait = min(self.seconds_to_next() + 0.01, 30.0)
            sleeper = asyncio.ensure_future(self._sleep(wait))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait([sleeper, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
