"""The WQ-style API (the seed's "WonderQ"): one queue named `wq`, under `/wq`.

- `POST /wq` with any JSON document -> 201 `{"messageID"}`; 400 when the body is not JSON.
- `GET /wq?amount=N` -> 200 `{"messages": [{"id", "body"}]}`: up to N (default 10, at most
  1,000) messages, each locked for the queue's visibility timeout (1 s when this API
  creates the queue).
- `PATCH /wq/{id}` -> 204: the message is processed (deleted); 404 when the id is unknown
  or its lock is no longer held.

How ids map to leases: the `id` that `GET` hands out is `<receipt handle>-<lock end>`
(the lease's 48-hex-digit receipt handle, then the end of the lock in ms since the epoch,
in hex), so it names one message *under one lock*. PATCH first checks the lock end against
the database's clock (past it: 404), then deletes by receipt handle, which matches only
while no other consumer has received the message since (else 404, nothing deleted). The
`messageID` returned by `POST` is the message's own id (the first 32 hex digits of every
handle it is later given out with); it names no lease, so PATCH with it is 404 as well.
The queue is created on first use by any of the three routes.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from conveyor.broker.broker import Broker
from conveyor.errors import QueueNotFound
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
    return json_response({"messages": [{"id": lease_id(m.receipt_handle, m.lease_until),
                                        "body": body_out(m.body)} for m in messages]})


def lease_id(receipt_handle: str, lease_until: int) -> str:
    """The id a consumer is given: the lease's handle and when its lock ends."""
    return f"{receipt_handle}-{lease_until:x}"


def parse_lease_id(text: str) -> tuple[str, int] | None:
    """(receipt handle, lock end in ms), or None when `text` is not such an id."""
    handle, dash, end = text.partition("-")
    if not dash or len(handle) != 48 or not 0 < len(end) <= 16:
        return None
    try:
        return handle, int(end, 16)
    except ValueError:
        return None


@router.patch("/{message_id}", status_code=204, response_class=Response,
              responses={404: {"description": "Unknown, or no longer locked."}})
async def processed(message_id: str, broker: BrokerDep) -> Response:
    """Mark a locked message processed (delete it) while its lock holds."""
    await ensure_queue(broker)
    lease = parse_lease_id(message_id)
    now = broker.now()
    if lease is not None and lease[1] > (now if now is not None else await broker.storage.now()):
        [result] = await broker.delete(QUEUE, [lease[0]])
        if result.ok:  # else stale: received again since, or gone
            return Response(status_code=204)
    return error_response(404, "not_found",
                          "No message is locked under this id (unknown, or its lock lapsed "
                          "or was handed to another consumer).")
