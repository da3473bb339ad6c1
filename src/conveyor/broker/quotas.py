"""Per-queue quotas: at most `max_in_flight` leased messages (SQS's 120,000 by default) and,
optionally, at most `max_depth` messages in all. Past them a receive or a send is refused
with OverLimit (HTTP 429, SQS `OverLimit`) instead of the queue growing without bound.

The counts are read from the storage and cached for a moment per queue (longer while the
queue is far from its limits), so a busy queue costs one count query a second or less;
like SQS's, the limits are approximate by the traffic of that moment.
"""

from __future__ import annotations

import time

from conveyor.config import MAX_IN_FLIGHT
from conveyor.errors import OverLimit
from conveyor.models import Queue, QueueStats
from conveyor.storage.base import Storage

NEAR = 0.8  # within this fraction of a limit, counts are re-read every `cache_seconds`
FAR_CACHE_SECONDS = 5.0


class Quotas:
    """The limits of one broker's queues."""

    def __init__(self, storage: Storage, *, max_in_flight: int | None = MAX_IN_FLIGHT,
                 max_depth: int | None = None, cache_seconds: float = 1.0) -> None:
        self.storage = storage
        self.max_in_flight = max_in_flight
        self.max_depth = max_depth
        self.cache_seconds = cache_seconds
        self._counts: dict[int, tuple[float, QueueStats]] = {}

    async def _stats(self, queue: Queue, now: int | None) -> QueueStats:
        clock = time.monotonic()
        cached = self._counts.get(queue.id)
        if cached is not None and cached[0] > clock:
            return cached[1]
        stats = await self.storage.queue_stats(queue.id, now, recent=True)
        near = ((self.max_in_flight is not None
                 and stats.in_flight >= NEAR * self.max_in_flight)
                or (self.max_depth is not None and stats.total >= NEAR * self.max_depth))
        ttl = self.cache_seconds if near else max(self.cache_seconds, FAR_CACHE_SECONDS)
        self._counts[queue.id] = (clock + ttl, stats)
        return stats

    async def check_send(self, queue: Queue, count: int, now: int | None) -> None:
        """OverLimit when `count` more messages would pass the queue's maximum depth."""
        if self.max_depth is None:
            return
        stats = await self._stats(queue, now)
        if stats.total + count > self.max_depth:
            raise OverLimit(f"Queue {queue.name!r} holds {stats.total} messages; its limit is "
                            f"{self.max_depth}. Receive and delete some, or send later.")

    async def check_receive(self, queue: Queue, wanted: int, now: int | None) -> int:
        """How many of `wanted` may be leased; OverLimit when the queue already has its
        maximum of messages in flight."""
        if self.max_in_flight is None:
            return wanted
        stats = await self._stats(queue, now)
        room = self.max_in_flight - stats.in_flight
        if room <= 0:
            raise OverLimit(f"Queue {queue.name!r} has {stats.in_flight} messages in flight; "
                            f"its limit is {self.max_in_flight}. Delete (acknowledge) some, "
                            "or let their visibility timeouts lapse.")
        return min(wanted, room)
