"""Routes that cancel jobs: one by id, in bulk for a filter, and the workers' check.

Thin: `broker.jobs` (`conveyor.broker.job_cancel`) checks the values and raises the errors
(422 `invalid_input`, 404 `job_not_found`, 409 `job_not_cancellable`).

With API keys, cancelling takes `manage` on the job's queue, or for a filter on its queue
(on every queue when it names none), as the explorer's other actions (`http.explorer`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from conveyor.broker.job_cancel import MAX_CHECK
from conveyor.http.auth import permit
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.explorer import BulkRequest, SkippedOut, _skipped
from conveyor.http.job_routes import JobStatusOut, permit_job
from conveyor.http.wire import job_status_json, json_response

router = APIRouter(tags=["jobs"], dependencies=[Depends(checked_json)])


class CancelManyOut(BaseModel):
    """The jobs cancelled (or asked to stop, if running), the ones left alone, and where
    to continue (null: done)."""

    cancelled: list[JobStatusOut]
    skipped: list[SkippedOut]
    next: str | None


class CancelCheck(BaseModel):
    """A worker's running jobs, to learn which are to be cancelled."""

    model_config = ConfigDict(extra="forbid", strict=True)  # true is not 1

    job_ids: list[str] = Field(description=f"Up to {MAX_CHECK:,} job ids.")


class CancelCheckOut(BaseModel):
    """The ones among them with a cancel request."""

    job_ids: list[str]


@router.post("/v1/jobs/cancel", response_model=CancelManyOut, responses=errors(400, 422))
async def cancel_many(request: BulkRequest, broker: BrokerDep, http: Request) -> Response:
    """Cancel up to `limit` queued, running or retrying jobs matching the filters
    (`state`: one of those or absent for all three), each as
    `POST /v1/jobs/{job_id}/cancel`; call again with `after` = `next` until it is null.
    With no filter, `"all": true` is required (else 422 `invalid_input` on `all`)."""
    permit(http, "manage", request.queue)
    done, skipped, after = await broker.jobs.cancel_many(
        request.where(), limit=request.limit, after=request.after, all_jobs=request.all)
    return json_response({"cancelled": [job_status_json(j) for j in done],
                          "skipped": [_skipped(s) for s in skipped], "next": after})


@router.post("/v1/jobs/cancel-requests", response_model=CancelCheckOut,
             responses=errors(400, 422))
async def cancel_requests(request: CancelCheck, broker: BrokerDep) -> Response:
    """Which of these jobs are to be cancelled: a worker asks about its running jobs once
    per check, not once per job."""
    return json_response({"job_ids": await broker.jobs.cancel_requests(request.job_ids)})


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobStatusOut,
             responses={**errors(404, 409, 422), 202: {"model": JobStatusOut}})
async def cancel(job_id: str, broker: BrokerDep, http: Request) -> Response:
    """Cancel a queued, running or retrying job. 200 with status `cancelled` when it was
    not running (it never runs); 202 with its current status when a worker runs it: that
    worker cancels it at its next check (an async job is cancelled, a sync one sees
    `ctx.cancelled`). 404 `job_not_found` when no status is recorded; 409
    `job_not_cancellable` once it has ended."""
    await permit_job(http, broker, "manage", job_id)
    after = await broker.jobs.cancel(job_id)
    return json_response(job_status_json(after),
                         200 if after.status == "cancelled" else 202)
