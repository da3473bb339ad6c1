"""The WQ-style API (the seed's "WonderQ"): one queue named `wq`, under `/wq`.

- `POST /wq` with any JSON document -> 201 `{"messageID"}`; 400 when the body is not JSON.
- `GET /wq?amount=N` -> 200 `{"messages": [{"id", "body"}]}`: up to N (default 10, at most
  1,000) messages, each locked for the queue's visibility timeout (1 s when this API
  creates the queue).
- `PATCH /wq/{id}` -> 204: the message is processed (deleted); 404 when the id is unknown
  or its lock has expired (the message went back to the queue, and nothing is deleted).

One id per message, as the seed's README has it: the `messageID` that `POST` returns is the
`id` that `GET` hands out and the one `PATCH` takes. PATCH deletes the message while it is
locked (by the database's clock), whoever received it. The queue is created on first use
by any of the three routes. Bad input is a 4xx, never a 500.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from conveyor.broker.broker import Broker
from conveyor.errors import InvalidInput, QueueNotFound
from conveyor.http.deps import BrokerDep
from conveyor.http.errors import error_response
from conveyor.http.parse import MalformedJson, loads
from conveyor.http.wire import body_out, json_response
from conveyor.models import Body, BodyKind, SendEntry, dumps_json

router = APIRouter(prefix="/wq", tags=["wq"])

QUEUE = "wq"
VISIBILITY_SECONDS = 1  # 1,000 ms, the seed's lock
DEFAULT_AMOUNT = 10
MAX_AMOUNT = 1000


async def ensure_queue(broker: Broker) -> None:
    """Create `wq` (1 s visibility timeout) unless it exists."""
    try:
        await broker.queue(QUEUE)
    except QueueNotFound:
        await broker.create_queue(QUEUE, {"visibility_timeout": VISIBILITY_SECONDS})


@router.post("", status_code=201, responses={400: {"description": "Not JSON."}})
async def produce(request: Request, broker: BrokerDep) -> Response:
    """Enqueue any JSON document; returns its `messageID`."""
    raw = await request.body()
    try:
        value = loads(raw)
    except MalformedJson as exc:
        return error_response(400, "malformed_json", exc.message)
    await ensure_queue(broker)
    [sent] = await broker.send(QUEUE, [SendEntry(Body(dumps_json(value), BodyKind.JSON))])
    return json_response({"messageID": sent.id}, 201)


@router.get("", responses={400: {"description": "amount is not a whole number."}})
async def consume(broker: BrokerDep, amount: str | None = None) -> Response:
    """Lock and return up to `amount` messages (default 10, capped at 1,000)."""
    count = DEFAULT_AMOUNT
    if amount is not None:
        try:
            count = int(amount)
        except ValueError:
            count = 0
        if count < 1:
            return error_response(400, "invalid_input",
                                  "amount must be a whole number of at least 1.",
                                  field="amount")
    await ensure_queue(broker)
    messages = await broker.receive(QUEUE, min(count, MAX_AMOUNT), wait_seconds=0)
    return json_response({"messages": [{"id": m.id, "body": body_out(m.body)}
                                       for m in messages]})


@router.patch("/{message_id}", status_code=204, response_class=Response,
              responses={404: {"description": "Unknown, or no longer locked."}})
async def processed(message_id: str, broker: BrokerDep) -> Response:
    """Mark a locked message processed (delete it) while its lock holds."""
    await ensure_queue(broker)
    try:
        deleted = await broker.delete_leased(QUEUE, message_id)
    except InvalidInput:  # not a message id at all: unknown
        deleted = False
    if deleted:
        return Response(status_code=204)
    return error_response(404, "not_found",
                          "No message is locked under this id (unknown, processed already, or "
                          "its lock expired and it went back to the queue).")
