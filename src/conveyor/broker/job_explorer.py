"""The job explorer's broker operations: list tracked jobs by filter, retry and delete them.

`broker.jobs.list`, `.retry`, `.retry_many`, `.delete` and `.delete_many` delegate here.
Only tracked jobs (tasks with `track=True`) have a status row, so only they are seen.

A retry sends the job's own message again: a dead job's message waits in its queue's
dead-letter queue with the job's id (the broker moves it there whole), so it is moved back
to the job's queue with its receive count reset, exactly as a redrive does, and the status
starts over at `queued`. The arguments are not copied into the status row: the message
already holds them (with its attributes and priority), and copying every tracked job's
payload would double what each enqueue writes. When that message is gone (the dead-letter
queue's retention, a purge, a redrive or delete that came first), the retry is refused
with `job_message_gone` and nothing changes.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import TYPE_CHECKING, Any

from conveyor.broker import validation as v
from conveyor.errors import (
    Conflict,
    InvalidInput,
    JobMessageGone,
    JobNotFound,
    JobNotRetryable,
    QueueNotFound,
)
from conveyor.jobs import (
    JOB_STATUSES,
    RETRYABLE,
    JobAttempt,
    JobDetail,
    JobFilter,
    JobPage,
    JobStatus,
    Skipped,
    check_bulk,
)
from conveyor.storage.base import JobListParams

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["DLQ_SUFFIX", "MAX_BULK", "MAX_PAGE", "delete", "delete_many", "detail",
           "list_jobs", "retry", "retry_many", "timeline"]

MAX_PAGE = 1000
MAX_BULK = 1000
DLQ_SUFFIX = "-dlq"  # the worker's dead-letter queue name, when the queue names none
_MAX_TIME = 2**53
_ENDED = ("succeeded", "failed", "dead", "cancelled")


async def list_jobs(broker: Broker, where: JobFilter, *, limit: int = 100,
                    after: str | None = None) -> JobPage:
    """A page of tracked jobs matching `where`, newest update first; pass the page's
    `next` as `after` for the one after it. A job updated meanwhile moves to the top
    (it is not listed again on later pages)."""
    limit = _limit(limit, MAX_PAGE)
    rows = await broker.storage.job_list(_params(broker, where, limit + 1, after))
    more = len(rows) > limit
    rows = rows[:limit]
    return JobPage(rows, _cursor(rows[-1]) if more and rows else None)


async def detail(broker: Broker, job_id: str) -> JobDetail:
    """A job's status with its arguments, its attempts (oldest first: each with its worker,
    start, end, outcome and a failure's error and traceback) and a timeline. 404
    `job_not_found` when no status is recorded (or it expired)."""
    job_id = _job_id(job_id)
    found = await broker.jobs.status_get(job_id)
    if found is None:
        raise JobNotFound(f"No status for job {job_id!r}.")
    attempts = await broker.storage.job_attempts(job_id)
    return JobDetail(found, attempts, timeline(found, attempts))


def timeline(status: JobStatus, attempts: list[JobAttempt]) -> list[tuple[int, str, str]]:
    """(ms, event, detail) oldest first: the first record (`created`: the enqueue), each
    attempt's start and end, and the last recorded step when no attempt ended with it
    (queued again, dead-lettered)."""
    events: list[tuple[int, str, str]] = []
    if status.created_at is not None:
        events.append((status.created_at, "created", f"on {status.queue}"))
    for a in attempts:
        where = f" on {a.worker}" if a.worker else ""
        events.append((a.started_at, "started", f"attempt {a.attempt}{where}"))
        if a.ended_at is not None:
            events.append((a.ended_at, a.outcome, f"attempt {a.attempt}"
                           + (f": {a.error[:200]}" if a.error else "")))
    last = attempts[-1] if attempts else None
    told = last is not None and last.ended_at is not None and last.outcome == status.status
    if status.updated_at is not None and not told and not (
            status.status == "queued" and not attempts) and not (
            status.status == "running" and last is not None and last.ended_at is None):
        events.append((status.updated_at, status.status, "last update"))
    events.sort(key=lambda e: e[0])
    return events


async def retry(broker: Broker, job_id: str) -> JobStatus:
    """Send a dead or failed job again under the same id; its status is `queued` again.

    404 `job_not_found` when no status is recorded; 409 `job_not_retryable` for any other
    state (queued, running and retrying jobs will run anyway; succeeded and cancelled ones
    ended on purpose: enqueue them anew); 409 `job_message_gone` when its dead-letter
    message is no longer there. In every refusal nothing changes.
    """
    job_id = _job_id(job_id)
    found = await broker.jobs.status_get(job_id)
    if found is None:
        raise JobNotFound(f"No status for job {job_id!r}.")
    return await _retry_one(broker, found)


async def retry_many(broker: Broker, where: JobFilter, *, limit: int = 100,
                     after: str | None = None, all_jobs: bool = False
                     ) -> tuple[list[JobStatus], list[Skipped], str | None]:
    """Retry up to `limit` dead or failed jobs matching `where` (state: dead, failed or
    None for both); returns (retried, skipped with why, the cursor to continue from).
    An empty filter is refused (422 on `all`) unless `all_jobs` is True."""
    limit = _limit(limit, MAX_BULK)
    check_bulk(where, all_jobs)
    if where.state is not None and where.state not in RETRYABLE:
        raise InvalidInput(f"Only dead or failed jobs can be retried, not {where.state!r}.",
                           field="state")
    rows = await _candidates(broker, where, RETRYABLE, limit, after)
    done: list[JobStatus] = []
    skipped: list[Skipped] = []
    for row in rows[:limit]:
        try:
            done.append(await _retry_one(broker, row))
        except (JobMessageGone, JobNotRetryable) as exc:
            skipped.append(Skipped(row.job_id, exc.code, exc.message))
    more = len(rows) > limit
    return done, skipped, _cursor(rows[limit - 1]) if more else None


async def delete(broker: Broker, job_id: str) -> None:
    """Forget an ended job (succeeded, failed, dead or cancelled): its status, and a dead
    or failed job's dead-letter message if it is still there (so a redrive of that queue
    cannot bring it back). 404 `job_not_found`; 409 `conflict` while it is queued,
    running or retrying (cancel it first)."""
    job_id = _job_id(job_id)
    found = await broker.jobs.status_get(job_id)
    if found is None:
        raise JobNotFound(f"No status for job {job_id!r}.")
    if found.status not in _ENDED:
        raise Conflict(f"Job {job_id!r} is {found.status}; only an ended job can be "
                       "deleted (cancel it first).")
    await _delete_rows(broker, [found])


async def delete_many(broker: Broker, where: JobFilter, *, limit: int = 100,
                      after: str | None = None, all_jobs: bool = False
                      ) -> tuple[int, str | None]:
    """Forget up to `limit` ended jobs matching `where` (as `delete`; state: an ended one
    or None for all four); returns (how many, the cursor to continue from). An empty
    filter is refused (422 on `all`) unless `all_jobs` is True."""
    limit = _limit(limit, MAX_BULK)
    check_bulk(where, all_jobs)
    if where.state is not None and where.state not in _ENDED:
        raise InvalidInput(f"Only ended jobs ({', '.join(_ENDED)}) can be deleted, not "
                           f"{where.state!r}.", field="state")
    rows = await _candidates(broker, where, _ENDED, limit, after)
    await _delete_rows(broker, rows[:limit])
    more = len(rows) > limit
    return min(len(rows), limit), _cursor(rows[limit - 1]) if more else None


# the work ---------------------------------------------------------------------------
async def _retry_one(broker: Broker, found: JobStatus) -> JobStatus:
    if found.status not in RETRYABLE:
        raise JobNotRetryable(f"Job {found.job_id!r} is {found.status}; only a dead or "
                              "failed job can be retried.")
    queue = await broker.queue(found.queue)
    dlq = await _dead_letter_queue(broker, found)
    moved = dlq is not None and _is_message_id(found.job_id) and await \
        broker.storage.message_move_ids(dlq, queue.id, [found.job_id], broker.now())
    if not moved:
        raise JobMessageGone(f"Job {found.job_id!r}'s message is no longer in its "
                             "dead-letter queue (expired, purged, redriven or deleted), so "
                             "it cannot be sent again.")
    await broker.signal(queue.id)
    # A dead status takes any write, so its row (and attempt history) stays; a failed one
    # is final and would ignore "queued": forget it first.
    if found.status != "dead":
        await broker.storage.job_delete_many([found.job_id])
    await broker.jobs.status_set_many([JobStatus(
        found.job_id, "queued", found.queue, found.task, keep_seconds=found.keep_seconds,
        key=found.key, args=found.args)])
    again = await broker.jobs.status_get(found.job_id)
    return again or JobStatus(found.job_id, "queued", found.queue, found.task)


async def _delete_rows(broker: Broker, rows: list[JobStatus]) -> None:
    by_dlq: dict[int, list[str]] = {}
    for row in rows:
        if row.status in RETRYABLE and _is_message_id(row.job_id):
            dlq = await _dead_letter_queue(broker, row)
            if dlq is not None:
                by_dlq.setdefault(dlq, []).append(row.job_id)
    for dlq, ids in by_dlq.items():
        await broker.storage.message_delete_ids(dlq, ids, broker.now())
    if rows:
        await broker.storage.job_delete_many([r.job_id for r in rows])


async def _dead_letter_queue(broker: Broker, job: JobStatus) -> int | None:
    """The id of the dead-letter queue the job's queue names (else `<queue>-dlq`)."""
    try:
        source = await broker.queue(job.queue)
        name = source.attributes.dead_letter_queue or job.queue + DLQ_SUFFIX
        return (await broker.queue(name)).id
    except QueueNotFound:
        return None


async def _candidates(broker: Broker, where: JobFilter, states: tuple[str, ...],
                      limit: int, after: str | None) -> list[JobStatus]:
    """Up to limit + 1 rows in one of `states`, newest first (merged across states)."""
    wanted = (where.state,) if where.state is not None else states
    rows: list[JobStatus] = []
    for state in wanted:
        params = _params(broker, JobFilter(state, where.task, where.queue,
                                           where.updated_since, where.updated_until,
                                           where.key, where.created_since,
                                           where.created_until), limit + 1, after)
        rows.extend(await broker.storage.job_list(params))
    rows.sort(key=lambda r: (r.updated_at or 0, r.job_id), reverse=True)
    return rows[:limit + 1]


# validation -------------------------------------------------------------------------
def _params(broker: Broker, where: JobFilter, limit: int, after: str | None
            ) -> JobListParams:
    if not isinstance(where, JobFilter):
        raise InvalidInput("The filter must be a JobFilter.")
    state = where.state
    if state is not None and state not in JOB_STATUSES:
        raise InvalidInput(f"state must be one of {', '.join(JOB_STATUSES)}, not "
                           f"{state!r:.50}.", field="state")
    task = where.task
    if task is not None and (not isinstance(task, str) or not 1 <= len(task) <= 200):
        raise InvalidInput("task must be a task name of 1 to 200 characters.", field="task")
    queue = where.queue
    if queue is not None and (not isinstance(queue, str) or not (
            v.QUEUE_NAME.fullmatch(queue) or v.FIFO_QUEUE_NAME.fullmatch(queue))):
        raise InvalidInput(f"queue must be a queue name (1-80 letters, digits, '-' or '_'), "
                           f"not {queue!r:.100}.", field="queue")
    key = where.key
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 200):
        raise InvalidInput("key must be a string of 1 to 200 characters.", field="key")
    since = _time("updated_since", where.updated_since)
    until = _time("updated_until", where.updated_until)
    return JobListParams(state, task, queue, since, until, _decode(after), limit,
                         broker.now(), key, _time("created_since", where.created_since),
                         _time("created_until", where.created_until))


def _time(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TIME:
        raise InvalidInput(f"{field} must be a time in ms since the epoch, not "
                           f"{value!r:.50}.", field=field)
    return value


def _limit(value: Any, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise InvalidInput(f"limit must be an integer from 1 to {high:,}, not {value!r:.50}.",
                           field="limit")
    return value


def _job_id(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise InvalidInput("job_id must be a string of 1 to 200 characters.", field="job_id")
    return value


def _is_message_id(job_id: str) -> bool:
    """Only a message id (a UUID) can name a message; other ids were recorded by hand."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        return False
    return True


def _cursor(row: JobStatus) -> str:
    raw = f"{row.updated_at or 0}:{row.job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(after: Any) -> tuple[int, str] | None:
    if after is None:
        return None
    try:
        if not isinstance(after, str) or len(after) > 400:
            raise ValueError
        raw = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
        at, _, job_id = raw.partition(":")
        if not job_id:
            raise ValueError
        return int(at), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("after must be the `next` cursor of an earlier page.",
                           field="after") from None
