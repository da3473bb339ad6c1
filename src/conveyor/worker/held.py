"""A job a queue runner holds: its message, the lane running it, its lease and its cancel
state (see `conveyor.worker.runner`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from conveyor.models import Message
from conveyor.worker.context import JobContext

__all__ = ["Held", "on_lane"]


@dataclass(slots=True)
class Held:
    """A received job, from its receive until it is settled or released."""

    message: Message
    task: asyncio.Task[None] | None = None  # the lane running it, once one took it
    started: bool = False
    leased_at: float = field(default_factory=time.monotonic)
    cancelled: bool = False  # cancelled from outside (worker.cancels)
    context: JobContext | None = None  # a tracked job's, while it runs
    scope: asyncio.Timeout | None = None  # a tracked async job's, while it runs

    def cancel(self) -> None:
        """Stop the job: before it starts, or an async one where it awaits, or raise the
        flag a sync one can honour (`JobContext.cancelled`)."""
        self.cancelled = True
        if self.scope is not None:
            self.scope.reschedule(-1.0)  # due now: the job's task is cancelled at its await
        if self.context is not None:
            self.context._cancel.set()


def on_lane(held: Held, lane: asyncio.Task[None]) -> None:
    """Note the lane that took a held job (`Lanes`' started hook)."""
    held.task = lane
