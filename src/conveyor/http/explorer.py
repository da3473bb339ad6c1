"""Routes of the job explorer: list tracked jobs by filter, retry and delete them, one or in
bulk for a filter. Thin: `broker.jobs` (`conveyor.broker.job_explorer`) checks the values
and raises the errors (422 `invalid_input`, 404 `job_not_found`, 409 codes).

With API keys, listing a queue's jobs takes `receive` on it and acting on jobs `manage` on
their queue (a retry moves a message, a delete deletes one, as a redrive or a purge does);
a filter without a queue reaches every queue, and so takes the action on every queue
(`*`): a cursor over only some queues' jobs would need their patterns in the query."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from conveyor.broker.job_explorer import MAX_BULK, MAX_PAGE
from conveyor.http.auth import permit
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.job_routes import JobStatusOut, permit_job
from conveyor.http.wire import job_status_json, json_response
from conveyor.jobs import JOB_STATUSES, JobFilter, Skipped

router = APIRouter(tags=["jobs"], dependencies=[Depends(checked_json)])
_STATES = ", ".join(JOB_STATUSES)


class JobPageOut(BaseModel):
    """A page of jobs, newest update first; `next` continues it (null: the last page)."""

    jobs: list[JobStatusOut]
    next: str | None = Field(description="Pass as `after` for the next page.")


class SkippedOut(BaseModel):
    """A job a bulk action left alone, and why (an error code and sentence)."""

    job_id: str
    code: str
    message: str


class RetryManyOut(BaseModel):
    """The jobs sent again, the ones left alone, and where to continue (null: done)."""

    retried: list[JobStatusOut]
    skipped: list[SkippedOut]
    next: str | None


class DeleteManyOut(BaseModel):
    """How many jobs were forgotten, and where to continue (null: done)."""

    deleted: int
    next: str | None


class BulkRequest(BaseModel):
    """Which jobs a bulk action takes: the filters of `GET /v1/jobs`, a bound and a cursor."""

    model_config = ConfigDict(extra="forbid", strict=True)  # true is not 1

    state: str | None = None
    task: str | None = None
    queue: str | None = None
    updated_since: int | None = Field(None, description="ms since the epoch, inclusive.")
    updated_until: int | None = Field(None, description="ms since the epoch, exclusive.")
    key: str | None = None
    created_since: int | None = Field(None, description="ms since the epoch, inclusive.")
    created_until: int | None = Field(None, description="ms since the epoch, exclusive.")
    limit: int = Field(100, description=f"At most this many jobs per call (1-{MAX_BULK:,}).")
    after: str | None = Field(None, description="The `next` of the previous call.")
    all: bool = Field(False, description="true to act on every job when no filter is "
                                         "given (each call); without it, an empty filter "
                                         "is refused with 422.")

    def where(self) -> JobFilter:
        """The filter part."""
        return JobFilter(self.state, self.task, self.queue, self.updated_since,
                         self.updated_until, self.key, self.created_since,
                         self.created_until)


def _skipped(s: Skipped) -> dict[str, Any]:
    return {"job_id": s.job_id, "code": s.code, "message": s.message}


@router.get("/v1/jobs", response_model=JobPageOut, responses=errors(422))
async def list_jobs(
    broker: BrokerDep,
    http: Request,
    state: Annotated[str | None, Query(description=f"One of {_STATES}.")] = None,
    task: Annotated[str | None, Query(description="One task's jobs.")] = None,
    queue: Annotated[str | None, Query(description="One queue's jobs.")] = None,
    updated_since: Annotated[int | None, Query(
        description="Updated at or after this time (ms since the epoch).")] = None,
    updated_until: Annotated[int | None, Query(
        description="Updated before this time (ms since the epoch).")] = None,
    key: Annotated[str | None, Query(description="One key's jobs (the task's per-key "
                                                 "value, else its unique key).")] = None,
    created_since: Annotated[int | None, Query(
        description="Enqueued at or after this time (ms since the epoch).")] = None,
    created_until: Annotated[int | None, Query(
        description="Enqueued before this time (ms since the epoch).")] = None,
    limit: Annotated[int, Query(description=f"Jobs per page, 1-{MAX_PAGE:,}.")] = 100,
    after: Annotated[str | None, Query(description="The `next` of the page before.")] = None,
) -> Response:
    """Tracked jobs (tasks with `track=True`) matching every filter given, newest update
    first, a page at a time (keyset paging: `after` is the previous page's `next`). A job
    updated while you page moves to the top and is not listed again. Counts per state:
    `GET /v1/jobs/counts`."""
    permit(http, "receive", queue)
    page = await broker.jobs.list(
        JobFilter(state, task, queue, updated_since, updated_until, key, created_since,
                  created_until), limit=limit, after=after)
    return json_response({"jobs": [job_status_json(j) for j in page.jobs],
                          "next": page.next})


@router.post("/v1/jobs/retry", response_model=RetryManyOut, responses=errors(400, 422))
async def retry_many(request: BulkRequest, broker: BrokerDep, http: Request) -> Response:
    """Retry up to `limit` dead or failed jobs matching the filters (`state`: dead, failed
    or absent for both), each as `POST /v1/jobs/{job_id}/retry`. A job whose message is
    gone is listed in `skipped`; call again with `after` = `next` until `next` is null.
    With no filter, `"all": true` is required (else 422 `invalid_input` on `all`)."""
    permit(http, "manage", request.queue)
    done, skipped, after = await broker.jobs.retry_many(
        request.where(), limit=request.limit, after=request.after, all_jobs=request.all)
    return json_response({"retried": [job_status_json(j) for j in done],
                          "skipped": [_skipped(s) for s in skipped], "next": after})


@router.post("/v1/jobs/delete", response_model=DeleteManyOut, responses=errors(400, 422))
async def delete_many(request: BulkRequest, broker: BrokerDep, http: Request) -> Response:
    """Forget up to `limit` ended jobs (succeeded, failed, dead, cancelled) matching the
    filters, each as `DELETE /v1/jobs/{job_id}`; call again with `after` = `next` until
    `next` is null. With no filter, `"all": true` is required (else 422 `invalid_input`
    on `all`)."""
    permit(http, "manage", request.queue)
    deleted, after = await broker.jobs.delete_many(request.where(), limit=request.limit,
                                                   after=request.after,
                                                   all_jobs=request.all)
    return json_response({"deleted": deleted, "next": after})


@router.post("/v1/jobs/{job_id}/retry", response_model=JobStatusOut,
             responses=errors(404, 409, 422))
async def retry(job_id: str, broker: BrokerDep, http: Request) -> Response:
    """Send a dead or failed job again under the same id: its message moves back from the
    dead-letter queue to the job's queue (receive count reset, as a redrive does) and its
    status is `queued` again. 404 `job_not_found` when no status is recorded; 409
    `job_not_retryable` in any other state (queued, running and retrying jobs run anyway;
    a succeeded or cancelled one ended on purpose: enqueue it anew); 409
    `job_message_gone` when the dead-letter message is no longer there (expired, purged,
    redriven or deleted). A refusal changes nothing."""
    await permit_job(http, broker, "manage", job_id)
    return json_response(job_status_json(await broker.jobs.retry(job_id)))


@router.delete("/v1/jobs/{job_id}", status_code=204, response_class=Response,
               responses=errors(404, 409, 422))
async def delete(job_id: str, broker: BrokerDep, http: Request) -> Response:
    """Forget an ended job: its status and, for a dead or failed one, its dead-letter
    message (so a redrive cannot bring it back). 409 `conflict` while it is queued,
    running or retrying."""
    await permit_job(http, broker, "manage", job_id)
    await broker.jobs.delete(job_id)
    return Response(status_code=204)
