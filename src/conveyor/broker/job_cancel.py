"""Cancelling jobs from outside: `broker.jobs.cancel`, `.cancel_many` and the workers' check.

A cancel first records a request (the job's id, kept a while), then deletes the job's
message if no worker holds it (waiting, delayed, or between retries): such a job never runs,
and its status is `cancelled` at once. A job a worker holds is running: the request stays,
and that worker finds it on its next cancel check (`requested`, one query per check for all
its running jobs, see `conveyor.worker.cancels`), cancels an async job (asyncio) or raises
the flag a sync job can honour, and records `cancelled` when the job ends so.

Only tracked jobs (tasks with `track=True`) have a status, so only they can be found by id
here. An ended job (succeeded, failed, dead, cancelled) is refused with 409
`job_not_cancellable`, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from conveyor.broker.job_explorer import (
    MAX_BULK,
    _candidates,
    _cursor,
    _is_message_id,
    _job_id,
    _limit,
)
from conveyor.errors import InvalidInput, JobNotCancellable, JobNotFound, QueueNotFound
from conveyor.jobs import JobFilter, JobStatus, Skipped, check_bulk

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["CANCELLABLE", "CANCELLED", "MAX_CHECK", "cancel", "cancel_many", "requested"]

CANCELLABLE = ("queued", "running", "retrying")
"""The states a job can be cancelled in."""

MAX_CHECK = 10_000
"""The most job ids one cancel check asks about."""

CANCELLED = "Cancelled before it ran."
"""The error of a job cancelled while queued (its status, and its flow node's end)."""

_MIN_KEEP_MS = 3_600_000  # a request outlives any lease renewal gap by far


async def cancel(broker: Broker, job_id: str) -> JobStatus:
    """Cancel a queued, running or retrying job; its status after the call.

    `cancelled` when it was not running (it never will); otherwise its current status
    (running) with the request recorded for its worker. 404 `job_not_found` when no status
    is recorded; 409 `job_not_cancellable` once it has ended."""
    job_id = _job_id(job_id)
    found = await broker.jobs.status_get(job_id)
    if found is None:
        raise JobNotFound(f"No status for job {job_id!r}.")
    return await _cancel_one(broker, found)


async def cancel_many(broker: Broker, where: JobFilter, *, limit: int = 100,
                      after: str | None = None, all_jobs: bool = False
                      ) -> tuple[list[JobStatus], list[Skipped], str | None]:
    """Cancel up to `limit` queued, running or retrying jobs matching `where` (state: one
    of those, or None for all three); returns (their statuses after the call, the jobs
    left alone with why, the cursor to continue from). An empty filter is refused (422
    on `all`) unless `all_jobs` is True."""
    limit = _limit(limit, MAX_BULK)
    check_bulk(where, all_jobs)
    if where.state is not None and where.state not in CANCELLABLE:
        raise InvalidInput(f"Only {', '.join(CANCELLABLE)} jobs can be cancelled, not "
                           f"{where.state!r}.", field="state")
    rows = await _candidates(broker, where, CANCELLABLE, limit, after)
    done: list[JobStatus] = []
    skipped: list[Skipped] = []
    for row in rows[:limit]:
        try:
            done.append(await _cancel_one(broker, row))
        except JobNotCancellable as exc:
            skipped.append(Skipped(row.job_id, exc.code, exc.message))
    more = len(rows) > limit
    return done, skipped, _cursor(rows[limit - 1]) if more else None


async def requested(broker: Broker, job_ids: Sequence[str]) -> list[str]:
    """Which of these jobs (a worker's running jobs) are to be cancelled."""
    if isinstance(job_ids, str) or len(job_ids) > MAX_CHECK:
        raise InvalidInput(f"job_ids must be a list of at most {MAX_CHECK:,} ids.",
                           field="job_ids")
    ids = [_job_id(i) for i in job_ids]
    if not ids:
        return []
    return await broker.storage.cancel_find(ids, broker.now())


async def _cancel_one(broker: Broker, found: JobStatus) -> JobStatus:
    job_id = found.job_id
    if found.status not in CANCELLABLE:
        raise JobNotCancellable(f"Job {job_id!r} has ended ({found.status}); only a "
                                "queued, running or retrying job can be cancelled.")
    storage = broker.storage
    # The request first: a worker that receives the job between these two statements
    # still finds it on its next check.
    keep_ms = max(found.keep_seconds * 1000, _MIN_KEEP_MS)
    await storage.cancel_put(job_id, keep_ms, broker.now())
    deleted: list[str] = []
    if _is_message_id(job_id):
        try:
            queue = await broker.queue(found.queue)
        except QueueNotFound:
            queue = None
        if queue is not None:
            # A flow node's failed end is recorded with the delete, in one transaction:
            # the steps waiting for it follow its on_failure policy now.
            deleted, released = await storage.flow_cancel_queued(
                queue.id, [job_id], CANCELLED, broker.now())
            for queue_id in released:
                await broker.signal(queue_id)
    if not deleted:
        return found  # held by a worker: it ends the job at its next check
    await broker.jobs.status_set(job_id, "cancelled", queue=found.queue, task=found.task,
                                 attempts=found.attempts,
                                 error=CANCELLED,
                                 keep_seconds=found.keep_seconds)
    after = await broker.jobs.status_get(job_id)
    return after or JobStatus(job_id, "cancelled", found.queue, found.task, found.attempts)
