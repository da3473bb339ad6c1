"""The process pool ("spawner"): a supervisor that runs N worker processes, restarts any
that die, and with an autoscaler grows and shrinks the pool with the backlog.

Each worker is `python -m conveyor.worker APP --url URL` (a plain process, so a crash or a
SIGKILL of one loses nothing: its jobs come back when their leases end). SIGTERM/SIGINT to
the supervisor is passed to every worker, which drains gracefully; shrinking sends SIGTERM
to the newest worker only. Workers die with the supervisor, even by `kill -9`
(`conveyor.lifeline`), so none is left running unsupervised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.client.source import Source
from conveyor.connect import open_source
from conveyor.errors import QueueNotFound
from conveyor.reach import Reach, where
from conveyor.worker.autoscale import Autoscaler, Sample
from conveyor.worker.process import load_app

log = logging.getLogger("conveyor.pool")


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """The pool's shape: start size, autoscale bounds, check interval, worker flags."""

    processes: int = 1
    autoscale: tuple[int, int] | None = None
    interval: float = 5.0
    worker_args: Sequence[str] = ()


class Pool:
    """Supervises worker processes of the App `spec` (module:attribute) on `url`."""

    def __init__(self, spec: str, url: str | None, options: PoolOptions) -> None:
        self.spec = spec
        self.app = load_app(spec)
        self.url = url or self.app.url
        self.options = options
        self.scaler = Autoscaler(*options.autoscale) if options.autoscale else None
        self.children: list[subprocess.Popen[bytes]] = []
        self._draining: list[subprocess.Popen[bytes]] = []
        self._stopping = asyncio.Event()
        # The autoscaler's reads: a source that is down is logged once, not every check.
        self.reach = Reach(where(None, self.url))

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "conveyor.worker", self.spec,
                   "--supervisor", str(os.getpid())]
        if self.url:
            command += ["--url", self.url]
        return [*command, *self.options.worker_args]

    def _spawn(self) -> None:
        child = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL)
        self.children.append(child)

    def _say(self, text: str) -> None:
        print(f"conveyor worker: {text}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        """Stop every worker gracefully, then return from `run`."""
        self._stopping.set()

    async def run(self) -> int:
        """Supervise until stopped; returns 0."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        start = self.options.processes
        if self.scaler is not None:
            start = max(self.scaler.minimum, min(self.scaler.maximum, start))
        for _ in range(start):
            self._spawn()
        self._say(f"{start} worker processes")
        source: Source | None = None
        next_check = time.monotonic() + self.options.interval
        try:
            while not self._stopping.is_set():
                self._reap()
                if self.scaler is not None and time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.options.interval
                    if source is None:
                        source = open_source(self.url)
                        await source.start()
                    await self._scale(source)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.2)
        finally:
            await self._shutdown()
            if source is not None:
                await source.close()
        return 0

    def _reap(self) -> None:
        for child in list(self.children):
            status = child.poll()
            if status is not None:
                self.children.remove(child)
                self._say(f"worker {child.pid} exited with {status}; starting another")
                self._spawn()
        self._draining = [c for c in self._draining if c.poll() is None]

    async def _scale(self, source: Source) -> None:
        assert self.scaler is not None
        asked = self.reach.now()
        try:
            sample = await self.sample(source)
        except Exception as exc:
            self.reach.error(exc, "reading queue stats failed", logger=log)
            return
        self.reach.ok(asked)
        current = len(self.children)
        target = self.scaler.decide(current, sample)
        detail = (f"backlog {sample.visible}, in flight {sample.in_flight}, oldest "
                  f"{sample.oldest_age:.1f} s")
        if target > current:
            for _ in range(target - current):
                self._spawn()
            self._say(f"scaled up to {target} ({detail})")
        elif target < current:
            for _ in range(current - target):
                child = self.children.pop()
                child.send_signal(signal.SIGTERM)
                self._draining.append(child)
            self._say(f"scaled down to {target} ({detail})")

    async def sample(self, source: Source) -> Sample:
        """The backlog of the App's queues now."""
        visible = in_flight = 0
        oldest = 0.0
        for queue in sorted({t.options.queue for t in self.app.tasks.values()}):
            try:
                stats = await source.queue_stats(queue)
            except QueueNotFound:
                continue
            visible += stats.visible
            in_flight += stats.in_flight
            oldest = max(oldest, stats.oldest_age_seconds or 0.0)
        return Sample(visible, in_flight, oldest)

    async def _shutdown(self) -> None:
        everyone = self.children + self._draining
        for child in everyone:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        self._say(f"stopping {len(everyone)} worker processes")
        for child in everyone:
            await asyncio.to_thread(child.wait)
