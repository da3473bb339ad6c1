"""Routes for queues: create, list, get, change, delete, purge."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from conveyor.http.auth import permit
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.schemas import (
    CreateQueueRequest,
    PurgeResult,
    QueueList,
    QueueOut,
    UpdateQueueRequest,
)
from conveyor.http.wire import json_response, queue_json
from conveyor.keys import ApiKey
from conveyor.models import QueueStats

router = APIRouter(prefix="/v1/queues", tags=["queues"],
                   dependencies=[Depends(checked_json)])


@router.post("", status_code=201, response_model=QueueOut,
             responses={200: {"model": QueueOut, "description": "It already existed with "
                                                                "the same attributes."},
                        **errors(400, 409, 413, 422)})
async def create_queue(request: CreateQueueRequest, broker: BrokerDep, http: Request
                       ) -> Response:
    """Create a queue. Asking again with the same attributes returns it (200); with
    different ones is a 409."""
    given = request.attributes.model_dump(exclude_unset=True) if request.attributes else {}
    _permit_dead_letter_queue(http, given)
    queue, created = await broker.create_queue(request.name, given)
    stats = QueueStats() if created else await broker.queue_stats(queue.name)
    return json_response(queue_json(queue, stats), 201 if created else 200)


@router.get("", response_model=QueueList, responses=errors(422))
async def list_queues(request: Request, broker: BrokerDep, prefix: str = "",
                      after: str | None = None, limit: int = 1000) -> Response:
    """Queues by name (optionally with a prefix, paged by `after`), with counts that may be
    a few seconds old; with API keys, only the queues the key has a grant on."""
    queues = await broker.list_queues(prefix, after, limit)
    key: ApiKey | None = getattr(request.state, "api_key", None)
    if key is not None:
        queues = [q for q in queues if key.allows_any(q.name)]
    stats = await broker.all_queue_stats()
    empty = QueueStats()
    return json_response({"queues": [queue_json(q, stats.get(q.id, empty)) for q in queues]})


@router.get("/{queue}", response_model=QueueOut, responses=errors(404))
async def get_queue(queue: str, broker: BrokerDep) -> Response:
    """A queue's attributes and exact counts."""
    found = await broker.get_queue(queue)
    return json_response(queue_json(found, await broker.queue_stats(queue)))


@router.patch("/{queue}", response_model=QueueOut, responses=errors(400, 404, 413, 422))
async def update_queue(queue: str, request: UpdateQueueRequest, broker: BrokerDep,
                       http: Request) -> Response:
    """Change some attributes (e.g. `{"attributes": {"paused": true}}`)."""
    given = request.attributes.model_dump(exclude_unset=True)
    _permit_dead_letter_queue(http, given)
    updated = await broker.update_queue(queue, given)
    return json_response(queue_json(updated, await broker.queue_stats(queue)))


def _permit_dead_letter_queue(http: Request, given: dict[str, object]) -> None:
    """Messages of a queue move to its dead-letter queue by themselves later: naming one
    is sending there, so it takes `send` on it."""
    dlq = given.get("dead_letter_queue")
    if isinstance(dlq, str):
        permit(http, "send", dlq)


@router.delete("/{queue}", status_code=204, response_class=Response, responses=errors(404))
async def delete_queue(queue: str, broker: BrokerDep) -> Response:
    """Delete a queue and every message in it."""
    await broker.delete_queue(queue)
    return Response(status_code=204)


@router.post("/{queue}/purge", response_model=PurgeResult, responses=errors(404))
async def purge_queue(queue: str, broker: BrokerDep) -> Response:
    """Delete every message of a queue."""
    return json_response({"purged": await broker.purge_queue(queue)})
