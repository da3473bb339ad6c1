"""Routes for worker heartbeats: `GET /v1/workers`, and the beat and stop of each worker.

Thin: each route parses its body's shape and calls `broker.workers`, which checks ranges and
raises the same errors as in-process (422 with the one error shape).

With API keys, a heartbeat's queues are the worker's: beating takes `receive` on the
queues it reads and ran tasks of, and `send` on those its schedules enqueue to (another
key's beat would make flows refuse tasks on those queues); the list shows a key the
workers whose every queue it may receive from. Stopping a worker takes its id, which only
the list shows.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from conveyor.broker.workers import MAX_TTL, MIN_TTL
from conveyor.heartbeats import (
    DURATION_BUCKETS,
    Heartbeat,
    Schedule,
    TaskCounts,
    WorkerInfo,
    worker_json,
)
from conveyor.http.auth import allowed, permit
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.errors import error_response
from conveyor.http.wire import json_response
from conveyor.keys import Action

router = APIRouter(tags=["workers"], dependencies=[Depends(checked_json)])
_BOUNDS = ", ".join(f"{b:g}" for b in DURATION_BUCKETS)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true is not 1


class ScheduleIn(_In):
    """A cron schedule the worker runs."""

    name: str = Field(description="The schedule's name in the database (ticks are claimed "
                                  "by it).")
    task: str
    queue: str
    schedule: str = Field(description="As a person writes it: `*/5 * * * * (UTC)`, "
                                      "`every 10 s`.")
    next_run_at: int = Field(description="When it next fires, ms since the epoch.")


class CountsIn(_In):
    """One task's runs on one queue in this worker since it started (cumulative)."""

    queue: str
    task: str
    runs: int = Field(0, description="Runs that ended, any way.")
    failures: int = Field(0, description="Runs that raised an error.")
    retries: int = Field(0, description="Runs sent back for another attempt.")
    seconds: float = Field(0.0, description="Total duration of the runs.")
    buckets: list[int] = Field(description=f"Runs per duration bucket, not cumulative: "
                                           f"at most {_BOUNDS} seconds, then longer.")


class HeartbeatIn(_In):
    """A worker's heartbeat: who it is and what it runs."""

    host: str
    pid: int
    queues: list[str]
    concurrency: int = Field(description="Jobs it may run at once, over all its queues.")
    running: int = Field(description="Jobs running now.")
    ttl_seconds: float = Field(description=f"Forget the worker this long after this beat "
                                           f"({MIN_TTL:g} to {MAX_TTL:,.0f}).")
    schedules: list[ScheduleIn] = []
    counts: list[CountsIn] = []


class WorkerOut(BaseModel):
    """A live worker: its last heartbeat and when it started, beat, and expires."""

    worker_id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    running: int
    ttl_seconds: float
    schedules: list[ScheduleIn]
    counts: list[CountsIn]
    started_at: int
    beat_at: int
    expires_at: int


class WorkersOut(BaseModel):
    """Live workers (last beat within its TTL), by start time."""

    workers: list[WorkerOut]


@router.get("/v1/workers", response_model=WorkersOut, responses=errors())
async def list_workers(broker: BrokerDep, http: Request) -> Response:
    """Live worker processes, with their queues, running jobs, schedules and counts."""
    shown = visible_workers(http, "receive", await broker.workers.list())
    return json_response({"workers": [worker_json(w) for w in shown]})


def visible_workers(http: HTTPConnection, action: Action, workers: Iterable[WorkerInfo]
                    ) -> list[WorkerInfo]:
    """The workers whose every queue (read, run on, scheduled to) the key may `action`."""
    return [w for w in workers if allowed(http, action, *w.queues,
                                          *(c.queue for c in w.counts),
                                          *(s.queue for s in w.schedules))]


@router.put("/v1/workers/{worker_id}", status_code=204, response_class=Response,
            responses=errors(400, 422))
async def beat(worker_id: str, request: HeartbeatIn, broker: BrokerDep, http: Request
               ) -> Response:
    """Record a worker's heartbeat, replacing its last; it is listed until `ttl_seconds`
    after this beat."""
    permit(http, "receive", *request.queues, *(c.queue for c in request.counts))
    permit(http, "send", *(s.queue for s in request.schedules))
    await broker.workers.beat(Heartbeat(
        worker_id, request.host, request.pid, tuple(request.queues), request.concurrency,
        request.running, request.ttl_seconds,
        tuple(Schedule(s.name, s.task, s.queue, s.schedule, s.next_run_at)
              for s in request.schedules),
        tuple(TaskCounts(c.queue, c.task, c.runs, c.failures, c.retries, c.seconds,
                         tuple(c.buckets)) for c in request.counts)))
    return Response(status_code=204)


@router.delete("/v1/workers/{worker_id}", status_code=204, response_class=Response,
               responses=errors(404, 422))
async def stop(worker_id: str, broker: BrokerDep) -> Response:
    """Forget a worker (it stopped cleanly); 404 `worker_not_found` when not listed."""
    if not await broker.workers.remove(worker_id):
        return error_response(404, "worker_not_found",
                              f"No live worker {worker_id[:200]!r}.", field="worker_id")
    return Response(status_code=204)
