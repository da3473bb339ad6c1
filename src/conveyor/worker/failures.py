"""A queue runner's jobs that did not succeed: retried with backoff and jitter, snoozed,
cancelled, or dead-lettered with their last error (see `conveyor.worker.runner`).

`Failures` is a mixin of the runner's `_QueueRunner`, which supplies the attributes and
the two methods declared here; status writes are `outcomes.Outcomes`'.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

from conveyor.client.source import Source
from conveyor.heartbeats import TaskTally
from conveyor.models import Message, MessageAttribute, SendEntry
from conveyor.reach import Reach
from conveyor.worker import flows
from conveyor.worker.app import DLQ_SUFFIX, App
from conveyor.worker.exceptions import Cancel, Retry, Snooze
from conveyor.worker.outcomes import Outcomes
from conveyor.worker.retry import backoff_seconds, is_final
from conveyor.worker.task import Received, Task, TaskOptions

__all__ = ["Failures"]

log = logging.getLogger("conveyor.worker")


class Failures(Outcomes):
    """Settles a job that raised: retry, snooze, cancel or dead-letter it."""

    source: Source
    app: App
    reach: Reach  # the worker's: a failure while the source is down is logged once

    def _tally(self, name: str) -> TaskTally:
        raise NotImplementedError

    def _count_failure(self) -> None:
        raise NotImplementedError

    async def _settle_failure(self, message: Message, job: Received | None,
                              options: TaskOptions, exc: BaseException,
                              task: Task[Any, Any] | None = None) -> None:
        attempt = message.receive_count
        handle = message.receipt_handle
        error = f"{type(exc).__name__}: {exc}"[:4000]
        track = options.track and job is not None
        if isinstance(exc, Snooze):
            if track and job is not None:  # the attempt ends; the status stays running
                self._status(job, task, "running", error=error,
                             waits=_snooze_seconds(exc))
            await self._snooze(message, exc)
            return
        if job is not None and job.flow is not None and (
                isinstance(exc, Cancel) or is_final(options, attempt)):
            await flows.record_failure(self.source, job.flow, error, self.reach)
        if isinstance(exc, Cancel):
            if track and job is not None:  # acknowledged once its end is written
                self._keep_leased(job)
                self._status(job, task, "cancelled", error=error,
                             then=functools.partial(self._ack, handle))
            else:
                self.acks.add(handle)
            if job is not None and job.unique is not None:
                await self._release_unique(job, options, "cancelled")
            return
        self._count_failure()
        if is_final(options, attempt):
            log.warning("job %s (%s) failed for good after %d runs: %s", message.id,
                        job.task if job else "?", attempt, error)
            if track and job is not None and not await self._written(
                    job, task, "dead", error=error, exc=exc):
                return  # not recorded: it comes back after its lease, to end again
            await self._dead_letter(message, attempt, error)
            if job is not None and job.unique is not None:
                await self._release_unique(job, options, "dead")
            return
        delay = exc.delay if isinstance(exc, Retry) and exc.delay is not None else \
            backoff_seconds(options, attempt)
        if track and job is not None:
            self._status(job, task, "retrying", error=error, exc=exc,
                         waits=int(max(0, delay)))
        if task is not None:
            self._tally(task.name).retries += 1
        try:
            await self.source.retry(self.queue, handle, int(max(0, delay)), error)
        except Exception as exc:
            self.reach.error(exc, "retry of %s failed; it comes back after its lease",
                             message.id)

    async def _snooze(self, message: Message, snooze: Snooze) -> None:
        # Back later with the receive given back, so no attempt is spent; the tracked
        # status stays "running" (the next run writes the same attempt again).
        delay = _snooze_seconds(snooze)
        try:
            await self.source.retry(self.queue, message.receipt_handle, delay,
                                    f"snoozed for {delay} s", snooze=True)
        except Exception as exc:
            self.reach.error(exc, "snoozing %s failed; it comes back after its lease",
                             message.id)

    async def _release_unique(self, job: Received, options: TaskOptions, state: str
                              ) -> None:
        # A unique job ending in a state outside its by_state frees its key for the next
        # enqueue (a job whose task is not unique here, or lost, keeps it until it lapses).
        unique = options.unique
        if job.unique is None or unique is None or state in unique.by_state:
            return
        try:
            await self.source.jobs.claim_release(job.unique, job.id)
        except Exception as exc:
            self.reach.error(exc, "releasing the unique key of %s failed; it lapses in time",
                             job.id)

    async def _dead_letter(self, message: Message, attempt: int, error: str) -> None:
        handle = message.receipt_handle
        max_receives = self.app.max_receives(self.queue)
        try:
            if max_receives is not None and attempt >= max_receives:
                # Visible now with the error recorded; the broker moves it to the DLQ on
                # the next receive, atomically, keeping its id and history.
                await self.source.retry(self.queue, handle, 0, error)
                return
            if max_receives is not None:  # the queue has a DLQ: move it there now, whole
                await self.source.retry(self.queue, handle, 0, error, dead_letter=True)
                return
            attributes = dict(message.attributes)
            attributes["conveyor-error"] = MessageAttribute("String", error[:1000])
            attributes["conveyor-source-queue"] = MessageAttribute("String", self.queue)
            await self.source.send(self.queue + DLQ_SUFFIX, [SendEntry(
                message.body, attributes=attributes, priority=message.priority)])
            self.acks.add(handle)
        except Exception as exc:
            self.reach.error(exc, "dead-lettering %s failed; it comes back after its lease",
                             message.id)


def _snooze_seconds(snooze: Snooze) -> int:
    return int(max(0, math.ceil(snooze.seconds)))
