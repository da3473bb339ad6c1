"""The job system's broker operations: rate limits, concurrency slots, cron ticks, job status.

`broker.limits` and `broker.jobs`. Workers reach them in-process or through the HTTP API
(`conveyor.http.job_routes`), and every one keeps its state in the database, so it holds across
processes and machines. Inputs are checked here, once; storage runs thin SQL.

Rate limits are GCRA (a token bucket kept as one timestamp per key): `rate` tokens per
`per` seconds, at most `burst` at once (default `rate`). Over any span of L seconds a key
grants at most `burst + L * rate / per` tokens in all, whoever takes them; the long-run
rate is exactly `rate / per`. Taking a chunk of tokens per call keeps the database cost at
a few statements a second even at thousands of sends a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.broker import job_cancel, job_explorer
from conveyor.broker import validation as v
from conveyor.errors import InvalidInput, TooManyEntries
from conveyor.jobs import (
    CRON_LEASE_SECONDS,
    CRON_RECLAIM_MS,
    JOB_STATUSES,
    MAX_KEEP,
    CronLease,
    Grant,
    JobDetail,
    JobFilter,
    JobPage,
    JobStatus,
    Skipped,
)
from conveyor.models import dumps_json
from conveyor.storage.base import (
    AttemptRow,
    JobRow,
    RateTakeParams,
    SlotAcquireParams,
    SlotRenewParams,
)

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["CronLease", "Grant", "JobStatus", "Jobs", "Limits"]

MAX_KEY = 200
MAX_RATE = 1_000_000_000
MAX_PER = 30 * 86_400.0
MIN_INTERVAL_MS = 0.001  # a million tokens a second: finer than the stored timestamp
MAX_WANT = 10_000
MAX_SLOTS = 1_000_000
MAX_LEASE = 86_400.0
MAX_PENALTY = 7 * 86_400.0
MAX_ATTEMPTS = 1_000_000
MAX_ERROR = 16_384
MAX_TRACEBACK = 16_384
MAX_ARGS = 65_536  # a job page shows a call's arguments up to this many characters of JSON
CRON_KEEP_MS = 7 * 86_400_000  # a claimed tick is remembered for a week after its claim
CRON_MAX_LEASE = 60.0  # far below CRON_RECLAIM_MS, so a lapsed claim can be taken over
_SWEEP_BATCH = 10_000


class Limits:
    """Rate-limit tokens and concurrency slots shared by every worker (`broker.limits`)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def take(self, key: str, rate: int, per: float, want: int = 1,
                   burst: int | None = None) -> Grant:
        """Take up to `want` tokens of `rate` per `per` seconds for `key`.

        Grants what the bucket holds now (possibly 0, never more than `burst`) and says
        how long until it holds another token; while the key is penalized, grants 0 and
        says how long the penalty lasts.
        """
        key = _text("key", key)
        rate = _int("rate", rate, 1, MAX_RATE)
        per = _seconds("per", per, MAX_PER)
        want = _int("want", want, 1, MAX_WANT)
        burst = rate if burst is None else _int("burst", burst, 1, MAX_RATE)
        interval = per * 1000.0 / rate
        if interval < MIN_INTERVAL_MS:
            raise InvalidInput("A rate limit can allow at most 1,000,000 tokens a second.",
                               field="rate")
        state = await self._broker.storage.rate_take(
            RateTakeParams(key, interval, burst, want, self._broker.now()))
        if state.blocked_until > state.now:
            wait_ms = float(state.blocked_until - state.now)
        else:  # the next token is whole once now + burst * interval >= tat + interval
            wait_ms = max(0.0, state.tat - (burst - 1) * interval - state.now)
        return Grant(state.granted, math.ceil(wait_ms) / 1000.0)

    async def penalize(self, key: str, seconds: float) -> None:
        """Give nobody tokens for `key` during the next `seconds` (a provider's 429
        Retry-After). The bucket refills meanwhile; a longer penalty already in force
        stays."""
        key = _text("key", key)
        seconds = _seconds("seconds", seconds, MAX_PENALTY)
        await self._broker.storage.rate_penalize(key, math.ceil(seconds * 1000),
                                                 self._broker.now())

    async def acquire(self, key: str, limit: int, holder: str, want: int = 1,
                      lease_seconds: float = 60) -> int:
        """Take up to `want` more of `key`'s `limit` slots for `holder`; returns how many
        (0..want). Live slots of a key never exceed `limit` across all holders. The
        holder's slots lapse `lease_seconds` after its last acquire or renew, so a crashed
        worker's slots come back."""
        key = _text("key", key)
        limit = _int("limit", limit, 1, MAX_SLOTS)
        holder = _text("holder", holder)
        want = _int("want", want, 1, MAX_WANT)
        lease_ms = _lease_ms(lease_seconds)
        return await self._broker.storage.slot_acquire(
            SlotAcquireParams(key, holder, limit, want, lease_ms, self._broker.now()))

    async def renew(self, key: str, holder: str, lease_seconds: float = 60) -> int:
        """Extend `holder`'s slots of `key` by `lease_seconds` from now; returns how many
        it holds (0 when they have lapsed: acquire again)."""
        key = _text("key", key)
        holder = _text("holder", holder)
        lease_ms = _lease_ms(lease_seconds)
        return await self._broker.storage.slot_renew(
            SlotRenewParams(key, holder, lease_ms, self._broker.now()))

    async def release(self, key: str, holder: str, count: int = 1) -> None:
        """Give back up to `count` of `holder`'s slots of `key`."""
        key = _text("key", key)
        holder = _text("holder", holder)
        count = _int("count", count, 1, MAX_SLOTS)
        await self._broker.storage.slot_release(key, holder, count)

    async def expire(self, now: int | None = None) -> int:
        """Delete spent buckets (full, unpenalized: as if never used) and lapsed slots;
        called by `Broker.sweep`. Returns how many rows went."""
        storage = self._broker.storage
        at = self._broker.now() if now is None else now
        removed = 0
        for expire in (storage.rate_expire, storage.slot_expire):
            while (n := await expire(at, _SWEEP_BATCH)):
                removed += n
                if n < _SWEEP_BATCH:
                    break
        return removed


class Jobs:
    """Cron tick claims and job statuses (`broker.jobs`)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def cron_claim(self, schedule: str, tick_at: int) -> bool:
        """True for exactly one caller per (schedule, tick), however many schedulers run.

        `tick_at` is the tick's time in ms since the epoch (any clock: it is only a name
        here). A claimed tick is remembered for a week after its claim, far longer than
        any scheduler looks back for missed ticks.
        """
        schedule = _text("schedule", schedule)
        tick_at = _int("tick_at", tick_at, 0, 2**53)
        return await self._broker.storage.cron_claim(schedule, tick_at, self._broker.now())

    async def cron_lease(self, schedule: str, tick_at: int,
                         lease_seconds: float = CRON_LEASE_SECONDS) -> CronLease:
        """Claim a cron tick as a lease: `claimed` for one caller, who sends the tick's job
        and then calls `cron_sent`. A claim not reported sent within `lease_seconds` (its
        scheduler was killed in between) is won again by the next caller, for as long as
        a send of the first one would still be deduplicated (a minute inside the 5-minute
        deduplication window); `pending` tells a loser to look again later, and `lapsed`
        lists the schedule's other ticks to take over now."""
        schedule = _text("schedule", schedule)
        tick_at = _int("tick_at", tick_at, 0, 2**53)
        lease_ms = math.ceil(_seconds("lease_seconds", lease_seconds, CRON_MAX_LEASE) * 1000)
        return await self._broker.storage.cron_lease(schedule, tick_at, lease_ms,
                                                     CRON_RECLAIM_MS, self._broker.now())

    async def cron_sent(self, schedule: str, tick_at: int) -> None:
        """A leased tick's job is sent: its claim is final, never taken over."""
        schedule = _text("schedule", schedule)
        tick_at = _int("tick_at", tick_at, 0, 2**53)
        await self._broker.storage.cron_sent(schedule, tick_at)

    async def claim_release(self, key: str, job_id: str) -> bool:
        """Let go of a unique job's key (`Claim`) if that job still holds it: a unique job
        that ended in a state outside its `by_state` frees the key for the next enqueue.
        True when released."""
        if not isinstance(key, str) or not 1 <= len(key) <= v.MAX_CLAIM_KEY:
            raise InvalidInput(f"key must be a string of 1 to {v.MAX_CLAIM_KEY} characters.",
                               field="key")
        job_id = v.check_message_id(job_id, "job_id")
        return await self._broker.storage.claim_release(key, job_id)

    async def status_set(self, job_id: str, status: str, *, queue: str,
                         task: str | None = None, attempts: int = 0,
                         error: str | None = None, result: Any = None,
                         keep_seconds: int = 86_400) -> None:
        """Record a job's status (replacing the previous one), kept for `keep_seconds`."""
        await self.status_set_many([JobStatus(job_id, status, queue, task, attempts, error,
                                              result, keep_seconds)])

    async def status_set_many(self, items: Sequence[JobStatus], *,
                              connection: object = None) -> None:
        """Record a batch of statuses (up to 1,000) in one write; all or none.

        A status behind the recorded one (fewer attempts, or an earlier step of the same
        attempt: queued, running, retrying, then an end) is ignored, except over a dead job
        that it starts over: `queued` (a retry), or a run no attempt of the job has had
        (its `started_at`: a redrive runs attempt 1 again). Within a batch the same rule
        holds in order. `updated_at` of the items is ignored.
        `connection`: write in the application's transaction, as `Broker.send` does."""
        if len(items) > v.MAX_BATCH:
            raise TooManyEntries(f"A batch holds at most {v.MAX_BATCH} statuses, "
                                 f"not {len(items)}.")
        rows: dict[str, JobRow] = {}
        attempts: dict[tuple[str, int, int], AttemptRow] = {}
        for index, item in enumerate(items):
            row = _job_row(item, index)
            attempt = _attempt_row(item, index)
            new_run = False
            if attempt is not None:  # every attempt of the batch, its end over its start
                name = (attempt.job_id, attempt.attempt, attempt.started_at)
                earlier_attempt = attempts.get(name)
                new_run = earlier_attempt is None
                if earlier_attempt is None or earlier_attempt.ended_at is None:
                    attempts[name] = attempt
            earlier = rows.pop(row.job_id, None)  # keep the furthest (else the last)
            if earlier is not None and row.report is None:
                row = row._replace(report=earlier.report)  # a report lands with its end
            rows[row.job_id] = row if earlier is None or row.progress >= earlier.progress \
                or (earlier.status == "dead" and (row.status == "queued" or new_run)) \
                else earlier
        if rows:
            storage = self._broker.storage
            if connection is not None:
                storage = storage.bound(connection)
            await storage.job_put_many(list(rows.values()), self._broker.now(),
                                       list(attempts.values()))

    async def status_get(self, job_id: str) -> JobStatus | None:
        """A job's status, or None when unknown or expired."""
        job_id = _text("job_id", job_id)
        return await self._broker.storage.job_get(job_id, self._broker.now())

    async def detail(self, job_id: str) -> JobDetail:
        """A job's page: status, arguments, attempts and timeline (see
        `job_explorer.detail`); 404 `job_not_found` when unknown or expired."""
        return await job_explorer.detail(self._broker, job_id)

    async def status_counts(self, queue: str | None = None) -> dict[str, int]:
        """How many jobs are in each status (every status listed, zeros too), of one
        queue or of all."""
        if queue is not None:
            queue = _queue(queue)
        found = await self._broker.storage.job_counts(queue, self._broker.now())
        return {status: found.get(status, 0) for status in JOB_STATUSES}

    async def status_counts_by_task(self) -> dict[tuple[str, str, str], int]:
        """How many jobs are in each status, by (queue, task, status); statuses with no
        job are left out, and a job recorded without a task name counts under task ""."""
        return await self._broker.storage.job_counts_by_task(self._broker.now())

    # the job explorer (conveyor.broker.job_explorer) --------------------------------
    async def retry(self, job_id: str) -> JobStatus:
        """Send a dead or failed job again under its id (see `job_explorer.retry`)."""
        return await job_explorer.retry(self._broker, job_id)

    async def retry_many(self, where: JobFilter | None = None, *, limit: int = 100,
                         after: str | None = None, all_jobs: bool = False
                         ) -> tuple[list[JobStatus], list[Skipped], str | None]:
        """Retry up to `limit` dead or failed jobs matching `where` (no filter: only with
        `all_jobs=True`)."""
        return await job_explorer.retry_many(self._broker, where or JobFilter(),
                                             limit=limit, after=after, all_jobs=all_jobs)

    async def delete(self, job_id: str) -> None:
        """Forget an ended job and its dead-letter message (see `job_explorer.delete`)."""
        await job_explorer.delete(self._broker, job_id)

    async def delete_many(self, where: JobFilter | None = None, *, limit: int = 100,
                          after: str | None = None, all_jobs: bool = False
                          ) -> tuple[int, str | None]:
        """Forget up to `limit` ended jobs matching `where` (no filter: only with
        `all_jobs=True`)."""
        return await job_explorer.delete_many(self._broker, where or JobFilter(),
                                              limit=limit, after=after, all_jobs=all_jobs)

    async def cancel(self, job_id: str) -> JobStatus:
        """Cancel a queued, running or retrying job (see `job_cancel.cancel`)."""
        return await job_cancel.cancel(self._broker, job_id)

    async def cancel_many(self, where: JobFilter | None = None, *, limit: int = 100,
                          after: str | None = None, all_jobs: bool = False
                          ) -> tuple[list[JobStatus], list[Skipped], str | None]:
        """Cancel up to `limit` queued, running or retrying jobs matching `where` (no
        filter: only with `all_jobs=True`)."""
        return await job_cancel.cancel_many(self._broker, where or JobFilter(),
                                            limit=limit, after=after, all_jobs=all_jobs)

    async def cancel_requests(self, job_ids: Sequence[str]) -> list[str]:
        """Which of these jobs are to be cancelled (a worker's check of its running ones)."""
        return await job_cancel.requested(self._broker, job_ids)

    async def list(self, where: JobFilter | None = None, *, limit: int = 100,
                   after: str | None = None) -> JobPage:
        """A page of tracked jobs matching `where`, newest update first (keyset cursor).

        Defined last: below it, `list` in this class body names this method."""
        return await job_explorer.list_jobs(self._broker, where or JobFilter(), limit=limit,
                                            after=after)

    async def expire(self, now: int | None = None) -> int:
        """Drop statuses past their keep time (and cron ticks claimed over a week ago); called
        by `Broker.sweep`. Returns how many statuses went."""
        storage = self._broker.storage
        at = self._broker.now() if now is None else now
        removed = 0
        while (n := await storage.job_expire(at, _SWEEP_BATCH)):
            removed += n
            if n < _SWEEP_BATCH:
                break
        while await storage.cron_expire(CRON_KEEP_MS, at, _SWEEP_BATCH) == _SWEEP_BATCH:
            pass
        while await storage.cancel_expire(at, _SWEEP_BATCH) == _SWEEP_BATCH:
            pass
        return removed


# validation -------------------------------------------------------------------------
def _text(field: str, value: Any, index: int | None = None) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY:
        shown = f"{len(value)} characters" if isinstance(value, str) else repr(value)[:50]
        raise InvalidInput(f"{field} must be a string of 1 to {MAX_KEY} characters, "
                           f"not {shown}.", field=field, index=index)
    return value


def _int(field: str, value: Any, low: int, high: int, index: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer, not {value!r:.50}.", field=field,
                           index=index)
    if not low <= value <= high:
        raise InvalidInput(f"{field} must be between {low:,} and {high:,}, not {value:,}.",
                           field=field, index=index)
    return value


def _seconds(field: str, value: Any, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value):
        raise InvalidInput(f"{field} must be a number of seconds, not {value!r:.50}.",
                           field=field)
    if not 0 < value <= high:
        raise InvalidInput(f"{field} must be more than 0 and at most {high:,.0f} seconds, "
                           f"not {value}.", field=field)
    return float(value)


def _lease_ms(lease_seconds: Any) -> int:
    return math.ceil(_seconds("lease_seconds", lease_seconds, MAX_LEASE) * 1000)


def _queue(value: Any, index: int | None = None) -> str:
    if not isinstance(value, str) or not (
            v.QUEUE_NAME.fullmatch(value) or v.FIFO_QUEUE_NAME.fullmatch(value)):
        raise InvalidInput(f"queue must be a queue name (1-80 letters, digits, '-' or '_'), "
                           f"not {value!r:.100}.", field="queue", index=index)
    return value


def _job_row(item: Any, index: int) -> JobRow:
    if not isinstance(item, JobStatus):
        raise InvalidInput(f"Entry {index} is not a JobStatus.", index=index)
    job_id = _text("job_id", item.job_id, index)
    if item.status not in JOB_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(JOB_STATUSES)}, "
                           f"not {item.status!r:.50}.", field="status", index=index)
    queue = _queue(item.queue, index)
    task = None if item.task is None else _text("task", item.task, index)
    attempts = _int("attempts", item.attempts, 0, MAX_ATTEMPTS, index)
    keep = _int("keep_seconds", item.keep_seconds, 0, MAX_KEEP, index)
    error = item.error
    if error is not None:
        if not isinstance(error, str):
            raise InvalidInput(f"error must be a string, not {error!r:.50}.", field="error",
                               index=index)
        if len(error) > MAX_ERROR:  # a long traceback: keep its start, say it was cut
            error = error[:MAX_ERROR - 1] + "…"
    result = None
    if item.result is not None:
        result = v.encode_result(item.result, index)
    report = None
    if item.progress is not None:
        try:
            report = dumps_json(item.progress)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"progress must be a JSON value: {exc}.", field="progress",
                               index=index) from exc
        if len(report) > MAX_ERROR:
            raise InvalidInput(f"progress must encode to at most {MAX_ERROR:,} characters "
                               "of JSON.", field="progress", index=index)
    key = None if item.key is None else _text("key", item.key, index)
    return JobRow(job_id, item.status, queue, task, attempts, error, result, keep,
                  progress(item.status, attempts), report, key, _args(item.args, index))


def _args(value: Any, index: int) -> str | None:
    """The call's arguments as JSON text; a long one is kept as a string of its start,
    so the job page still shows what it was called with."""
    if value is None:
        return None
    try:
        text = dumps_json(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"args must be a JSON value: {exc}.", field="args",
                           index=index) from exc
    if len(text) > MAX_ARGS:
        text = dumps_json(text[:MAX_ARGS - 200] + "…")
    return text


def _attempt_row(item: JobStatus, index: int) -> AttemptRow | None:
    """The attempt a status starts or ends (a worker's report), or None."""
    if item.started_at is None:
        return None
    started = _int("started_at", item.started_at, 0, 2**53, index)
    ended = None if item.ended_at is None else _int("ended_at", item.ended_at, 0, 2**53,
                                                    index)
    worker = None if item.worker is None else _text("worker", item.worker, index)
    if ended is None:
        outcome = "running"
    elif item.status in ("running", "queued"):
        outcome = "snoozed"  # an attempt that ended without a step: back later
    else:
        outcome = item.status
    trace = item.traceback
    if trace is not None:
        if not isinstance(trace, str):
            raise InvalidInput(f"traceback must be a string, not {trace!r:.50}.",
                               field="traceback", index=index)
        if len(trace) > MAX_TRACEBACK:  # the end of a traceback says the most: keep it
            trace = "…" + trace[-(MAX_TRACEBACK - 1):]
    error = item.error if isinstance(item.error, str) else None
    if error is not None and len(error) > MAX_ERROR:
        error = error[:MAX_ERROR - 1] + "…"
    return AttemptRow(item.job_id, item.attempts, started, worker, ended,
                      outcome if ended is not None else "running",
                      error if ended is not None else None,
                      trace if ended is not None else None)


# Steps of one attempt, in order; a later attempt is further along than any step of an
# earlier one.
_STEP = {"queued": 0, "running": 1, "retrying": 2, "succeeded": 3, "failed": 3,
         "cancelled": 3, "dead": 3}


def progress(status: str, attempts: int) -> int:
    """How far a job has got. Storage ignores a status write behind the stored one, so a
    late or reordered write (a batch flushed out of order, a worker whose lease lapsed, the
    producer's "queued" landing after the worker's "running") cannot undo progress. A
    redrive starts a dead job over at attempt 1, behind its dead attempt, so a dead job
    also takes a write that starts it over (see `Jobs.status_set_many`), and only that:
    a late write of an earlier attempt looks just like a redrive's by this number."""
    return attempts * 4 + _STEP[status]
