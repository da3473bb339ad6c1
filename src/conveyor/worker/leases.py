"""A queue runner's lease heartbeat: the leases of the jobs it holds are extended every
third of the lease, and its global concurrency slots renewed (see `conveyor.worker.runner`).

`Leases` is a mixin of the runner's `_QueueRunner`, which supplies the attributes declared
here. A failed extension is retried at the next beat (a third of the lease later, so two
more tries before a lease can lapse); while the source is down it is logged by the
worker's `Reach`, once per outage.
"""

from __future__ import annotations

import asyncio
import time

from conveyor.client.source import Source
from conveyor.models import VisibilityEntry
from conveyor.reach import Reach
from conveyor.worker.held import Held
from conveyor.worker.rates import Slots

__all__ = ["Leases"]

CHUNK = 1000  # leases extended per request


class Leases:
    """Extends the leases of held and settling jobs until cancelled."""

    queue: str
    lease: int
    source: Source
    reach: Reach
    slots: Slots
    held: dict[str, Held]  # received jobs, by receipt handle, until their lane ends
    settling: dict[str, Held]  # tracked jobs past their lane, leased until acknowledged

    async def _heartbeat(self) -> None:
        interval = max(self.lease / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            due = time.monotonic() - interval * 0.9
            holding = {**self.settling, **self.held} if self.settling else self.held
            handles = [h for h, held in list(holding.items()) if held.leased_at <= due]
            for start in range(0, len(handles), CHUNK):
                chunk = handles[start:start + CHUNK]
                asked = self.reach.now()
                try:
                    await self.source.change_visibility(
                        self.queue, [VisibilityEntry(h, self.lease) for h in chunk])
                except Exception as exc:
                    self.reach.error(exc, "extending %d leases on %s failed", len(chunk),
                                     self.queue)
                    continue
                self.reach.ok(asked)
                now = time.monotonic()
                for h in chunk:
                    held = self.held.get(h) or self.settling.get(h)
                    if held is not None:
                        held.leased_at = now
            try:
                await self.slots.renew()
            except Exception as exc:
                self.reach.error(exc, "renewing concurrency slots failed")
