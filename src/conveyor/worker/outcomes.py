"""A queue runner's tracked-job statuses, and the acknowledgements that wait for them.

A tracked job's message is acknowledged (deleted) only once its outcome is written. The
status goes into the worker's batched, ordered status writes (`Batcher`) and hears when
its batch landed; only then is the acknowledgement queued, in the acknowledgements' own
batches. A worker killed in between leaves the message to come back and the job runs
again (at least once), where acknowledging first could leave a deleted job whose status
says `running` for good; a status write that fails leaves the message to come back too.
A dead job is dead-lettered only once its `dead` is written, for the same reason.

Until its acknowledgement is done, a settling job's lease is still extended by the
heartbeat (`settling`): a slow status write (a busy database) would otherwise let the
lease lapse and the job run twice. A status or flow end not written stops that (the job
comes back after its lease, as it should).

`Outcomes` is a mixin of the runner's `_QueueRunner` (through `failures.Failures`), which
supplies the attributes declared here.
"""

from __future__ import annotations

import asyncio
import functools
import traceback
from typing import Any

from conveyor.jobs import MAX_KEEP, JobStatus
from conveyor.worker import flows
from conveyor.worker.app import App
from conveyor.worker.batching import Batcher, Then
from conveyor.worker.exceptions import Cancel, Retry
from conveyor.worker.flows import FlowEnds
from conveyor.worker.held import Held
from conveyor.worker.task import Received, Task, TaskOptions

__all__ = ["Outcomes"]

_DEFAULT_OPTIONS = TaskOptions()


class Outcomes:
    """Writes a job's steps and settles the job once its outcome is written."""

    queue: str
    app: App
    holder: str
    acks: Batcher[str]
    flow_ends: FlowEnds
    statuses: Batcher[JobStatus]
    began: dict[str, int]  # tracked jobs running: their start (ms, wall)
    held: dict[str, Held]  # received jobs, by receipt handle, until their lane ends
    settling: dict[str, Held]  # tracked jobs past their lane, leased until acknowledged

    def _status(self, job: Received, task: Task[Any, Any] | None, status: str, *,
                error: str | None = None, result: Any = None,
                exc: BaseException | None = None, ended: bool = True,
                waits: int = 0, then: Then | None = None) -> None:
        # Each step also reports its attempt (start, end, worker, traceback): the job
        # explorer's history rides on the same batched write, no extra round trip.
        # `waits`: seconds before its next run (a retry's or snooze's delay), which the
        # status must outlive, or a job that waits longer than its keep time would lose
        # its status (and `job.result()` its answer) while still alive.
        options = task.options if task else _DEFAULT_OPTIONS
        keep = min((options.keep_result or 86400) + waits, MAX_KEEP)
        started = self.began.get(job.id) if status == "running" and not ended else \
            self.began.pop(job.id, None)
        end = None if started is None or (status == "running" and not ended) else \
            int(self.app.wall_time() * 1000)
        trace = None
        if exc is not None and started is not None and not isinstance(exc, (Retry, Cancel)):
            trace = "".join(traceback.format_exception(exc))
        self.statuses.add(JobStatus(job.id, status, self.queue, job.task, job.attempt,
                                    error, result, keep, worker=self.holder,
                                    started_at=started, ended_at=end, traceback=trace),
                          then)

    def _settle(self, job: Received, result: Any, written: bool) -> None:
        """Acknowledge a job that succeeded, once its status is `written` (a flow job once
        its end is stored too); not written, it comes back after its lease."""
        handle = job.message.receipt_handle
        if not written:
            self.settling.pop(handle, None)
        elif job.flow is None:
            self._ack_now(handle)
        else:
            self.flow_ends.add(flows.success(job.flow, result), handle)

    def _ack(self, handle: str, written: bool) -> None:
        """Acknowledge once the job's end is `written`; else it comes back after its lease."""
        if written:
            self._ack_now(handle)
        else:
            self.settling.pop(handle, None)

    def _ack_now(self, handle: str) -> None:
        """Queue the acknowledgement; a settling job's lease is kept until it is done."""
        if handle in self.settling:
            self.acks.add(handle, functools.partial(self._unsettle, handle))
        else:
            self.acks.add(handle)

    def _unsettle(self, handle: str, _written: object = None) -> None:
        """Stop extending a settling job's lease (acknowledged, or left to come back)."""
        self.settling.pop(handle, None)

    def _keep_leased(self, job: Received) -> None:
        """Keep extending the job's lease past its lane, until `_unsettle` (called by the
        follow-up of the status write just queued, whatever becomes of it)."""
        held = self.held.get(job.message.receipt_handle)
        if held is not None:
            self.settling[job.message.receipt_handle] = held

    async def _written(self, job: Received, task: Task[Any, Any] | None, status: str, *,
                       error: str, exc: BaseException) -> bool:
        """Write an end and wait until it is written (True) or failed to be (False)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def tell(written: bool) -> None:
            if not done.done():  # (cancelled with its lane at shutdown)
                done.set_result(written)
        self._status(job, task, status, error=error, exc=exc, then=tell)
        return await done
