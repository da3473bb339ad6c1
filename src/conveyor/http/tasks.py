"""Routes for redrive: start a move task on a dead-letter queue, list, poll, cancel.

With API keys, a move task is its source queue's: reading or cancelling one by id takes
`manage` there (the path names no queue), and a redrive to a `destination` takes `send`
on it. A redrive without one moves each message back to the queue it was dead-lettered
from, which named this queue as its dead-letter queue (with `send` on it); of a queue that
is no queue's dead-letter queue it is refused (`conveyor.broker.redrive`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from conveyor.broker.broker import Broker
from conveyor.http.auth import permit, scoped
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.schemas import MoveTaskList, MoveTaskOut, RedriveRequest
from conveyor.http.wire import json_response, task_json

router = APIRouter(tags=["redrive"], dependencies=[Depends(checked_json)])

REDRIVE_WAIT_SECONDS = 1.0


@router.post("/v1/queues/{queue}/redrive", response_model=MoveTaskOut,
             responses={202: {"model": MoveTaskOut, "description": "Still running: poll "
                                                                   "GET /v1/tasks/{id}."},
                        **errors(400, 404, 409, 413, 422, said={422: (
                            "Invalid input (`invalid_input`, with `field`: an empty "
                            "`destination` or the queue itself), "
                            "`fifo_redrive_unsupported` (field `destination`: a standard "
                            "queue's messages have no group id to go into a FIFO queue), "
                            "or `not_a_dead_letter_queue`: without a `destination`, the "
                            "queue is no queue's dead-letter queue and holds no dead "
                            "letter whose source still exists; nothing is started.")})})
async def start_redrive(queue: str, broker: BrokerDep, http: Request,
                        request: RedriveRequest | None = None) -> Response:
    """Move a dead-letter queue's messages back to the queues they came from (or to
    `destination`), receive counts reset. 200 with the task when it finished within about
    a second, else 202 with the running task. Without a `destination` the queue must be
    some queue's dead-letter queue (or hold dead letters whose source still exists):
    else 422 `not_a_dead_letter_queue`, as a redrive could move nothing back. A
    `destination` must be another queue, and not a FIFO queue for a standard queue's
    messages (422 `fifo_redrive_unsupported`)."""
    r = request or RedriveRequest()
    if r.destination is not None:
        permit(http, "send", r.destination)
    task = await broker.start_redrive(queue, r.destination, r.max_per_second,
                                      wait=REDRIVE_WAIT_SECONDS)
    return json_response(task_json(task), 202 if task.status == "running" else 200)


@router.get("/v1/queues/{queue}/redrive", response_model=MoveTaskList,
            responses=errors(404))
async def list_redrives(queue: str, broker: BrokerDep) -> Response:
    """Move tasks of a dead-letter queue, newest first."""
    return json_response({"tasks": [task_json(t) for t in await broker.redrive.list(queue)]})


@router.get("/v1/tasks/{task_id}", response_model=MoveTaskOut, responses=errors(404))
async def get_task(task_id: str, broker: BrokerDep, http: Request) -> Response:
    """One move task."""
    task = await broker.redrive.get(task_id)
    permit(http, "manage", task.source_queue)
    return json_response(task_json(task))


@router.post("/v1/tasks/{task_id}/cancel", response_model=MoveTaskOut,
             responses=errors(404, 409))
async def cancel_task(task_id: str, broker: BrokerDep, http: Request) -> Response:
    """Stop a running task after its current batch; 409 when it is not running."""
    await _permit_task(http, broker, task_id)
    return json_response(task_json(await broker.redrive.cancel(task_id)))


async def _permit_task(http: Request, broker: Broker, task_id: str) -> None:
    if scoped(http, "manage") is not None:  # else no look-up: every queue passes
        permit(http, "manage", (await broker.redrive.get(task_id)).source_queue)
