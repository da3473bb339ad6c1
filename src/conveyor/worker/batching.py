"""Work the run loop batches: acknowledgements and job-status writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("conveyor.worker")

T = TypeVar("T")


class Batcher(Generic[T]):
    """Collects items and hands them to `flush` in batches of up to `size`: at once when a
    batch is full, else within `interval` seconds. Failures are logged, never raised (an
    unacknowledged message simply comes back after its lease).

    `ordered`: one flush at a time, in the order the items came (what arrives meanwhile
    waits and goes in the next batch). Job statuses need it: a `running` written after
    the same attempt's `dead` reopens the job, since a dead job accepts any status (a
    redrive starts it over), and two flushes in flight at once can land in either order."""

    def __init__(self, flush: Callable[[Sequence[T]], Awaitable[object]], *,
                 size: int = 500, interval: float = 0.02, name: str = "batch",
                 ordered: bool = False) -> None:
        self._flush = flush
        self._size = size
        self._interval = interval
        self._name = name
        self._ordered = ordered
        self._items: list[T] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, item: T) -> None:
        """Queue one item."""
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
        task = asyncio.create_task(self._run(items))
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if self._ordered and not task.cancelled():
            self._spawn()

    async def _run(self, items: Sequence[T]) -> None:
        for start in range(0, len(items), self._size):
            try:
                await self._flush(items[start:start + self._size])
            except Exception:
                log.exception("%s: a batch of %d failed", self._name, len(items))

    async def drain(self) -> None:
        """Flush what is queued and wait for every flush in progress."""
        self._spawn()
        while self._pending:
            await asyncio.gather(*list(self._pending))
            self._spawn()
