"""Work the run loop batches: acknowledgements and job-status writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from conveyor.reach import Reach

log = logging.getLogger("conveyor.worker")

T = TypeVar("T")


Then = Callable[[bool], object]
"""Told whether an item's batch was written (False: its flush failed or was cancelled)."""


class Batcher(Generic[T]):
    """Collects items and hands them to `flush` in batches of up to `size`: at once when a
    batch is full, else within `interval` seconds. Failures are logged, never raised (an
    unacknowledged message simply comes back after its lease); an item added with `then`
    hears whether its batch was written, so what must follow a write (a job's
    acknowledgement after its outcome) waits for it without leaving the batch.

    `ordered`: one flush at a time, in the order the items came (what arrives meanwhile
    waits and goes in the next batch). Job statuses use it, so that a job's steps land in
    the order they happened: two flushes in flight at once can land in either order, and
    storage then has to tell a late step from a new one (`broker.jobs.progress`).
    `reach`: the worker's, which logs a failure while the source is down once per outage."""

    def __init__(self, flush: Callable[[Sequence[T]], Awaitable[object]], *,
                 size: int = 500, interval: float = 0.02, name: str = "batch",
                 ordered: bool = False, reach: Reach | None = None) -> None:
        self._flush = flush
        self._size = size
        self._interval = interval
        self._name = name
        self._ordered = ordered
        self._reach = reach or Reach()
        self._items: list[T] = []
        self._thens: list[tuple[int, Then]] = []  # (index in _items, told after its flush)
        self._pending: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, item: T, then: Then | None = None) -> None:
        """Queue one item; `then(written)` once its batch's flush ended."""
        if then is not None:
            self._thens.append((len(self._items), then))
        self._items.append(item)
        if len(self._items) >= self._size:
            self._spawn()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._spawn)

    def _spawn(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._items or (self._ordered and self._pending):
            return  # (ordered: `_done` starts the next batch once this one is written)
        items, self._items = self._items, []
        thens, self._thens = self._thens, []
        task = asyncio.create_task(self._run(items, thens))
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if self._ordered and not task.cancelled():
            self._spawn()

    async def _run(self, items: Sequence[T], thens: list[tuple[int, Then]]) -> None:
        told = 0
        try:
            for start in range(0, len(items), self._size):
                chunk = items[start:start + self._size]
                try:
                    await self._flush(chunk)
                    written = True
                except Exception as exc:
                    self._reach.error(exc, "%s: a batch of %d failed", self._name,
                                      len(chunk), logger=log)
                    written = False
                while told < len(thens) and thens[told][0] < start + self._size:
                    _tell(thens[told][1], written, self._name)
                    told += 1
        finally:  # cancelled mid-flush: not known to be written, so not
            for _, then in thens[told:]:
                _tell(then, False, self._name)

    async def drain(self) -> None:
        """Flush what is queued and wait for every flush in progress."""
        self._spawn()
        while self._pending:
            await asyncio.gather(*list(self._pending))
            self._spawn()


def _tell(then: Then, written: bool, name: str) -> None:
    try:
        then(written)
    except Exception:  # one follower's bug must not keep the rest of the batch from theirs
        log.exception("%s: a follow-up failed", name)
