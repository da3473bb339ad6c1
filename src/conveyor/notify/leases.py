"""Keeping a delivery batch's queue leases while it is being sent.

The gap this closes: a queue message whose lease expired while the first worker was still
sending (a long rate-limit wait, a slow provider) was received by a second worker, which
saw the notifications `sending` and, on channels that resend unknown outcomes (SMTP,
webhooks, email APIs), sent them again. Now a worker

1. extends the leases of the envelopes in hand every `heartbeat` seconds (by default a
   third of the visibility timeout) for as long as it works on them, and
2. just before the provider call, confirms the leases it still holds (extending them
   once more when the last confirmation is older than `heartbeat`); the notifications of an
   envelope whose lease is lost (or cannot be confirmed in time) are not sent: their rows
   were never marked `sending`, and the envelope is left, unacked, to the worker that
   holds it now (or gets it when the lease lapses).

So a second worker gets an envelope only when the first one stopped extending it (it
died, or its event loop stalled for longer than the lease's remaining two thirds), and the
first one never starts a send without a lease of at least `visibility - heartbeat` left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError
from conveyor.models import Message, VisibilityEntry
from conveyor.tasks import stop_task

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["LeaseKeeper"]

log = logging.getLogger("conveyor.notify")


class LeaseKeeper:
    """Extends the leases of some received messages until `stop()`; knows which are lost."""

    def __init__(self, broker: Broker, queue: str, messages: Sequence[Message],
                 visibility_timeout: int, heartbeat: float | None = None) -> None:
        self.broker = broker
        self.queue = queue
        self.handles = [m.receipt_handle for m in messages]
        self.visibility_timeout = visibility_timeout
        self.heartbeat = visibility_timeout / 3 if heartbeat is None else heartbeat
        self.lost: set[int] = set()
        """Indices (in `messages`) of the envelopes whose lease is no longer ours."""
        self._confirmed = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Extend in the background every `heartbeat` seconds."""
        if self.heartbeat > 0 and self._task is None:
            self._task = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        """Stop extending (the batch is settled)."""
        task, self._task = self._task, None
        await stop_task(task)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            await self.extend()

    async def extend(self) -> None:
        """Extend every lease still held by a full visibility timeout; a handle the broker
        refuses (stale: the message was received again) is lost. A broker error keeps the
        old state (the next beat or `confirm` tries again)."""
        async with self._lock:
            held = [i for i in range(len(self.handles)) if i not in self.lost]
            if not held:
                return
            started = time.monotonic()
            try:
                answers = await self.broker.change_visibility(self.queue, [
                    VisibilityEntry(self.handles[i], self.visibility_timeout) for i in held])
            except ConveyorError as exc:
                log.warning("notify: could not extend %d leases: %s", len(held), exc)
                return
            for i, answer in zip(held, answers):
                if not answer.ok:
                    self.lost.add(i)
            self._confirmed = started

    async def confirm(self) -> set[int]:
        """The lost envelopes, after extending once more when the last confirmation is
        older than `heartbeat` (or the lease's remaining time is unknown)."""
        age = time.monotonic() - self._confirmed
        if age >= self.heartbeat or age >= self.visibility_timeout / 2:
            await self.extend()
            if time.monotonic() - self._confirmed >= self.visibility_timeout / 2:
                # Not confirmed recently (the broker failed or was slower than half a
                # lease): none of them is safe to send. Give them all up, so that they
                # are neither extended nor acked: they lapse and come back whole. (Only
                # returning them, as before, let the batch ack envelopes it never sent.)
                self.lost.update(range(len(self.handles)))
        return set(self.lost)
