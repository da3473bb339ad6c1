"""A worker's heartbeat: who it is, what it runs and what it has done, every few seconds.

Off the per-job path: jobs add to a `Tally` in memory (a few additions each), and one
write per beat (`source.workers.beat`) sends the lot. The broker forgets a worker `ttl`
after its last beat, so a worker killed with `kill -9` disappears by itself; a clean stop
removes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from conveyor.client.source import Source
from conveyor.clock import system_clock
from conveyor.heartbeats import Heartbeat, Schedule, Tally
from conveyor.reach import Reach, outage
from conveyor.worker.app import App

log = logging.getLogger("conveyor.worker")

DEFAULT_INTERVAL = 5.0
KNOWN_TASKS = 500  # tasks listed before they run: half of what one heartbeat may carry
MISSED_BEATS = 3  # a worker is forgotten after this many intervals without a beat


class Beater:
    """Sends a worker's heartbeats until stopped, then removes it.

    `load()` returns (concurrency, running jobs) at the time of each beat; `schedules`:
    whether this worker runs the App's cron schedules (they are listed with it); `reach`:
    the worker's, told whether the source answers."""

    def __init__(self, app: App, source: Source, worker_id: str, queues: list[str],
                 tally: Tally, load: Callable[[], tuple[int, int]], *,
                 interval: float = DEFAULT_INTERVAL, ttl: float | None = None,
                 schedules: bool = True, reach: Reach | None = None) -> None:
        self.app = app
        self.source = source
        self.worker_id = worker_id
        self.queues = tuple(queues)
        self.tally = tally
        self.load = load
        self.interval = interval
        self.ttl = ttl if ttl is not None else interval * MISSED_BEATS
        self.schedules = schedules
        self.host = socket.gethostname()[:255] or "unknown"
        # Every task this worker can run is in its beats from the first one, so the
        # server can refuse a flow naming a task no live worker has (`broker.flows`).
        # (Each under its own queue: a job may be routed to any queue the worker reads.)
        for name, task in sorted(app.tasks.items())[:KNOWN_TASKS]:
            tally.know(task.options.queue, name)
        self._failing = False
        self.reach = reach or Reach()

    def heartbeat(self) -> Heartbeat:
        """This worker's heartbeat now."""
        concurrency, running = self.load()
        return Heartbeat(self.worker_id, self.host, os.getpid(), self.queues, concurrency,
                         running, self.ttl, self._schedules(), self.tally.snapshot())

    def _schedules(self) -> tuple[Schedule, ...]:
        if not self.schedules or not self.app.crons:
            return ()
        from conveyor.worker.cron import next_tick

        now = (self.app.clock or system_clock)()
        return tuple(Schedule(e.schedule[:1000], e.task.name, e.task.options.queue,
                              e.describe()[:1000], next_tick(e, now))
                     for e in self.app.crons)

    async def beat(self) -> None:
        """Send one heartbeat; a failure is logged (once until it works again; while the
        source is down, by `reach`, once per outage)."""
        asked = self.reach.now()
        try:
            await self.source.workers.beat(self.heartbeat())
        except Exception as exc:
            if outage(exc):
                self.reach.error(exc, "worker %s: heartbeat failed", self.worker_id)
            elif not self._failing:
                log.warning("worker %s: heartbeat failed; retrying every %g s",
                            self.worker_id, self.interval, exc_info=True)
                self._failing = True
        else:
            self.reach.ok(asked)
            if self._failing:
                log.info("worker %s: heartbeat works again", self.worker_id)
            self._failing = False

    async def run(self) -> None:
        """Beat now and every `interval` until cancelled."""
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def remove(self) -> None:
        """Say this worker has stopped (it goes from listings at once)."""
        with contextlib.suppress(Exception):
            await self.source.workers.remove(self.worker_id)
