"""Routes for the job system: rate-limit tokens, concurrency slots, cron ticks, job status.

Thin: each route parses its body's shape and calls `broker.limits` or `broker.jobs`, which
check ranges and raise the same errors as in-process (422 with the one error shape).

A job's id is its message's (a UUID, as `conveyor.ids` makes them): a status report under
any other id is a 422 `invalid_input` and writes nothing. Routes that read or act on a job
take any id and answer 404 `job_not_found` when none is recorded under it (in process,
`broker.jobs.status_set` may record a job under an id of its own).

With API keys, a job's status is its queue's: reporting one takes `receive` on the queue it
names and on the queue of the status it replaces (the job's worker), reading one or
counting a queue's `receive` there, counting all of them `receive` on every queue. Rate
limits and cron ticks are shared by every queue: they take `receive` on every queue
(`conveyor.http.auth.required`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from conveyor.broker.broker import Broker
from conveyor.broker.job_system import MAX_KEY, MAX_WANT
from conveyor.broker.validation import check_message_id
from conveyor.errors import InvalidInput
from conveyor.http.auth import permit, scoped
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.wire import job_detail_json, json_response
from conveyor.jobs import JOB_STATUSES, JobStatus
from conveyor.keys import Action

router = APIRouter(tags=["jobs"], dependencies=[Depends(checked_json)])
_STATUSES = ", ".join(JOB_STATUSES)
QueueParam = Annotated[str | None, Query(description="One queue's jobs (default: all).")]


class _In(BaseModel):
    # strict: JSON true is not 1 and "5" is not 5: a 422 `invalid_input` naming the field.
    model_config = ConfigDict(extra="forbid", strict=True)


# rate limits and slots --------------------------------------------------------------
class TakeRequest(_In):
    """Take up to `want` tokens of a rate limit of `rate` per `per` seconds."""

    key: str = Field(description=f"Free-form, 1-{MAX_KEY} characters: `task:send_email`, "
                                 "`domain:gmail.com`.")
    rate: int = Field(description="Tokens per `per` seconds, at least 1.")
    per: float = Field(description="Seconds, more than 0.")
    want: int = Field(1, description=f"Tokens wanted, 1-{MAX_WANT:,}.")
    burst: int | None = Field(None, description="Most tokens at once; default `rate`.")


class GrantOut(BaseModel):
    """Tokens granted (possibly fewer than wanted, or 0) and the wait for another."""

    granted: int
    retry_after: float = Field(description="Seconds until the bucket holds another token.")


class PenalizeRequest(_In):
    """Give nobody tokens for a key for a while (a provider's 429 Retry-After)."""

    key: str
    seconds: float = Field(description="More than 0, at most 7 days.")


class AcquireRequest(_In):
    """Take up to `want` of a key's `limit` concurrency slots for `holder`."""

    key: str
    limit: int = Field(description="Most slots held for this key by all holders at once.")
    holder: str = Field(description="Who holds the slots (a worker's id), 1-200 characters.")
    want: int = 1
    lease_seconds: float = Field(60, description="Slots lapse this long after the last "
                                                 "acquire or renew.")


class AcquireOut(BaseModel):
    """How many slots were granted (0 up to `want`)."""

    acquired: int


class RenewRequest(_In):
    """Extend a holder's slots of a key."""

    key: str
    holder: str
    lease_seconds: float = 60


class RenewOut(BaseModel):
    """How many slots the holder holds now (0: they lapsed; acquire again)."""

    held: int


class ReleaseRequest(_In):
    """Give back up to `count` of a holder's slots of a key."""

    key: str
    holder: str
    count: int = 1


@router.post("/v1/limits/take", response_model=GrantOut, responses=errors(400, 422))
async def take(request: TakeRequest, broker: BrokerDep) -> Response:
    """Take rate-limit tokens (GCRA, shared by every worker on every machine)."""
    grant = await broker.limits.take(request.key, request.rate, request.per, request.want,
                                     request.burst)
    return json_response({"granted": grant.granted, "retry_after": grant.retry_after})


@router.post("/v1/limits/penalize", status_code=204, response_class=Response,
             responses=errors(400, 422))
async def penalize(request: PenalizeRequest, broker: BrokerDep) -> Response:
    """Hold a key's tokens back for `seconds`."""
    await broker.limits.penalize(request.key, request.seconds)
    return Response(status_code=204)


@router.post("/v1/limits/acquire", response_model=AcquireOut, responses=errors(400, 422))
async def acquire(request: AcquireRequest, broker: BrokerDep) -> Response:
    """Acquire global concurrency slots, leased."""
    acquired = await broker.limits.acquire(request.key, request.limit, request.holder,
                                           request.want, request.lease_seconds)
    return json_response({"acquired": acquired})


@router.post("/v1/limits/renew", response_model=RenewOut, responses=errors(400, 422))
async def renew(request: RenewRequest, broker: BrokerDep) -> Response:
    """Extend the lease of a holder's slots."""
    held = await broker.limits.renew(request.key, request.holder, request.lease_seconds)
    return json_response({"held": held})


@router.post("/v1/limits/release", status_code=204, response_class=Response,
             responses=errors(400, 422))
async def release(request: ReleaseRequest, broker: BrokerDep) -> Response:
    """Give slots back."""
    await broker.limits.release(request.key, request.holder, request.count)
    return Response(status_code=204)


# cron -------------------------------------------------------------------------------
class CronClaimRequest(_In):
    """Claim one tick of a schedule."""

    schedule: str = Field(description="The schedule's name, 1-200 characters.")
    tick_at: int = Field(description="The tick's time, ms since the epoch.")
    lease_seconds: float | None = Field(
        default=None, description="Claim as a lease: taken over by the next claimer if not "
        "reported sent within this many seconds (a scheduler killed in between).")
    sent: bool = Field(default=False, description="Report the leased tick's job sent.")


class CronClaimOut(BaseModel):
    """True for exactly one claimer of a tick (remembered for a week after the claim)."""

    claimed: bool
    pending: bool = Field(default=False, description="Lost to a lease not reported sent "
                          "yet: claim again once it may have lapsed.")
    lapsed: list[int] = Field(default=[], description="The schedule's other ticks whose "
                              "lease lapsed unsent, to claim now.")


@router.post("/v1/cron/claim", response_model=CronClaimOut, responses=errors(400, 422),
             tags=["cron"])
async def cron_claim(request: CronClaimRequest, broker: BrokerDep) -> Response:
    """Claim a cron tick: however many schedulers run, one of them gets it."""
    if request.sent:
        await broker.jobs.cron_sent(request.schedule, request.tick_at)
        return json_response({"claimed": False})
    if request.lease_seconds is not None:
        lease = await broker.jobs.cron_lease(request.schedule, request.tick_at,
                                             request.lease_seconds)
        return json_response({"claimed": lease.claimed, "pending": lease.pending,
                              "lapsed": list(lease.lapsed)})
    claimed = await broker.jobs.cron_claim(request.schedule, request.tick_at)
    return json_response({"claimed": claimed})


# unique-job claims ------------------------------------------------------------------
class ClaimReleaseRequest(_In):
    """Let go of a unique job's key if that job still holds it."""

    key: str = Field(description="The claim's key, 1-512 characters.")
    job_id: str


class ClaimReleaseOut(BaseModel):
    """Whether the job held the key (and no longer does)."""

    released: bool


@router.post("/v1/jobs/claims/release", response_model=ClaimReleaseOut,
             responses=errors(400, 422))
async def claim_release(request: ClaimReleaseRequest, broker: BrokerDep) -> Response:
    """Free a unique job's key: the worker calls it when the job ended in a state outside
    its `by_state`, so the next enqueue of the same key is stored."""
    released = await broker.jobs.claim_release(request.key, request.job_id)
    return json_response({"released": released})


# job status -------------------------------------------------------------------------
class JobStatusFields(_In):
    """A job's status to record."""

    status: str = Field(description=f"One of {_STATUSES}.")
    queue: str
    task: str | None = None
    attempts: int = 0
    error: str | None = Field(None, description="The last error (cut at 16 KiB).")
    result: Any = Field(None, description="Any JSON value, up to 1 MiB.")
    keep_seconds: int = Field(86_400, description="Kept this long after this update.")
    progress: Any = Field(None, description="A running job's progress report (any JSON "
                                            "value, up to 16 KiB); none keeps the last.")
    key: str | None = Field(None, description="The job's key (kept from the first write).")
    args: Any = Field(None, description="The call's arguments, `{args, kwargs}` (kept from "
                                        "the first write; cut at 64 KiB of JSON).")
    worker: str | None = Field(None, description="The worker reporting the attempt.")
    started_at: int | None = Field(None, description="The attempt's start (ms); none: no "
                                                     "attempt is recorded.")
    ended_at: int | None = Field(None, description="The attempt's end (ms); none: it "
                                                   "runs.")
    traceback: str | None = Field(None, description="A failure's traceback (its end is "
                                                    "kept past 16 KiB).")


class JobStatusIn(JobStatusFields):
    """A job's status to record, with its id (batches)."""

    job_id: str


class JobStatusBatch(_In):
    """Statuses to record at once (up to 1,000; a repeated id: the furthest along wins)."""

    jobs: list[JobStatusIn]


class JobStatusOut(BaseModel):
    """A job's recorded status."""

    job_id: str
    status: str
    queue: str
    task: str | None
    attempts: int
    error: str | None
    result: Any
    keep_seconds: int
    updated_at: int
    progress: Any = None
    key: str | None = None
    created_at: int | None = None


class AttemptOut(BaseModel):
    """One run of a job: who ran it, when, and how it ended."""

    attempt: int
    started_at: int
    worker: str | None
    ended_at: int | None
    outcome: str = Field(description="running, succeeded, retrying, dead, failed, "
                                     "cancelled or snoozed.")
    error: str | None
    traceback: str | None


class EventOut(BaseModel):
    """One step of a job's timeline."""

    at: int = Field(description="ms since the epoch.")
    event: str
    detail: str


class JobDetailOut(JobStatusOut):
    """A job's page: its status, arguments, attempts (oldest first) and timeline."""

    args: Any = Field(None, description="`{args, kwargs}` as enqueued (tracked jobs).")
    attempt_history: list[AttemptOut]
    timeline: list[EventOut]


class JobCountsOut(BaseModel):
    """How many unexpired statuses there are of each kind (every status listed)."""

    counts: dict[str, int]


def job_id_of(value: str, index: int | None = None) -> str:
    """A job id from a path or body in its canonical form, or InvalidInput (422): a job's
    id is its message's, a UUID (`conveyor.ids`), so no job can have any other."""
    try:
        return check_message_id(value, "job_id")
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="job_id", index=index) from None


def _status(job_id: str, s: JobStatusFields) -> JobStatus:
    return JobStatus(job_id, s.status, s.queue, s.task, s.attempts, s.error, s.result,
                     s.keep_seconds, progress=s.progress, key=s.key, args=s.args,
                     worker=s.worker, started_at=s.started_at, ended_at=s.ended_at,
                     traceback=s.traceback)


@router.put("/v1/jobs/{job_id}", status_code=204, response_class=Response,
            responses=errors(400, 422))
async def put_status(job_id: str, request: JobStatusFields, broker: BrokerDep,
                     http: Request) -> Response:
    """Record a job's status, replacing the previous one unless it is behind it (fewer
    attempts, or an earlier step of the same attempt); a dead job takes only a status that
    starts it over (`queued`, or a run with a `started_at` no attempt has had)."""
    job_id = job_id_of(job_id)
    await _permit_reports(http, broker, [(job_id, request.queue)])
    await broker.jobs.status_set_many([_status(job_id, request)])
    return Response(status_code=204)


@router.post("/v1/jobs/status", status_code=204, response_class=Response,
             responses=errors(400, 422))
async def put_statuses(request: JobStatusBatch, broker: BrokerDep, http: Request
                       ) -> Response:
    """Record a batch of statuses in one write, all or none (each by the rule of PUT)."""
    ids = [job_id_of(j.job_id, index) for index, j in enumerate(request.jobs)]
    await _permit_reports(http, broker, [(i, j.queue) for i, j in zip(ids, request.jobs)])
    await broker.jobs.status_set_many([_status(i, j) for i, j in zip(ids, request.jobs)])
    return Response(status_code=204)


@router.get("/v1/jobs/counts", response_model=JobCountsOut, responses=errors(422))
async def count_statuses(broker: BrokerDep, http: Request, queue: QueueParam = None
                         ) -> Response:
    """How many jobs are in each status (before `/v1/jobs/{job_id}`, which it would match);
    `GET /v1/jobs` lists the jobs themselves."""
    permit(http, "receive", queue)
    return json_response({"counts": await broker.jobs.status_counts(queue)})


@router.get("/v1/jobs/{job_id}", response_model=JobDetailOut, responses=errors(404, 422))
async def get_status(job_id: str, broker: BrokerDep, http: Request) -> Response:
    """A job's status with its arguments, its attempts (`attempt_history`, oldest first:
    worker, start, end, outcome, a failure's error and traceback) and a `timeline`; 404
    `job_not_found` when unknown or expired."""
    found = await broker.jobs.detail(job_id)
    permit(http, "receive", found.status.queue)
    return json_response(job_detail_json(found))


async def _permit_reports(http: Request, broker: Broker,
                          reports: Sequence[tuple[str, str]]) -> None:
    """`receive` on the queue each (job id, queue) report names and on the queue of the
    status it would replace: naming its own queue must not overwrite another's job."""
    if scoped(http, "receive") is None:
        return  # no look-ups: every queue passes
    permit(http, "receive", *{queue for _, queue in reports})
    for job_id in dict.fromkeys(job_id for job_id, _ in reports):
        await permit_job(http, broker, "receive", job_id)


async def permit_job(http: HTTPConnection, broker: Broker, action: Action, job_id: str
                     ) -> None:
    """Forbidden unless the key may `action` on the job's queue; a job without a status
    is left for the broker to answer (404)."""
    if scoped(http, action) is None:
        return  # no look-up: every queue passes
    found = await broker.jobs.status_get(job_id)
    if found is not None:
        permit(http, action, found.queue)


