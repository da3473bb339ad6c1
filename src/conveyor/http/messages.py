"""Routes for messages: send, receive (long polling), delete, visibility, retry, peek."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from conveyor.hangups import hangup
from conveyor.http.deps import BrokerDep, checked_json, errors, request_body
from conveyor.http.parse import loads, send_entries
from conveyor.http.schemas import (
    BatchResults,
    DeleteRequest,
    EntryResultOut,
    PeekResponse,
    ReceiveRequest,
    ReceiveResponse,
    RetryRequest,
    SendRequest,
    SendResponse,
    VisibilityRequest,
)
from conveyor.http.wire import (
    entry_json,
    json_response,
    peeked_json,
    received_json,
    results_json,
    sent_json,
)
from conveyor.models import VisibilityEntry

router = APIRouter(prefix="/v1/queues/{queue}/messages", tags=["messages"])

_DEFAULT_RECEIVE = ReceiveRequest()
# The routes pydantic decodes (not the send route, which parses with orjson: parse.py).
CHECKED = [Depends(checked_json)]


@router.post("", status_code=201, response_model=SendResponse,
             responses=errors(400, 404, 413, 422), openapi_extra=request_body(SendRequest))
async def send(queue: str, request: Request, broker: BrokerDep) -> Response:
    """Send 1 to 1,000 messages, all or nothing; an error names the bad entry's `index`."""
    entries = send_entries(loads(await request.body()))  # no pydantic here: see parse.py
    return json_response(sent_json(await broker.send(queue, entries)), 201)


@router.post("/receive", response_model=ReceiveResponse,
             responses=errors(400, 404, 413, 422), dependencies=CHECKED)
async def receive(queue: str, broker: BrokerDep, http: Request,
                  request: ReceiveRequest | None = None) -> Response:
    """Lease up to `max_messages`; with `wait_seconds`, return as soon as one arrives (a
    poll whose client has gone stops waiting and leases nothing)."""
    r = request or _DEFAULT_RECEIVE
    # Only a poll that may wait (None: the queue's default, which may) watches for a
    # hang-up; one that answers at once spares the watching task.
    watch = hangup(http.receive) if r.wait_seconds != 0 else contextlib.nullcontext(None)
    async with watch as gone:
        messages = await broker.receive(queue, r.max_messages, r.visibility_timeout,
                                        r.wait_seconds, skip_groups=r.skip_groups,
                                        abandoned=gone)
    return json_response(received_json(messages))


@router.post("/delete", response_model=BatchResults, responses=errors(400, 404, 413, 422),
             dependencies=CHECKED)
async def delete(queue: str, request: DeleteRequest, broker: BrokerDep) -> Response:
    """Acknowledge messages; each entry says `ok`, `stale` or `invalid`."""
    return json_response(results_json(await broker.delete(queue, request.receipt_handles)))


@router.post("/visibility", response_model=BatchResults,
             responses=errors(400, 404, 413, 422), dependencies=CHECKED)
async def change_visibility(queue: str, request: VisibilityRequest, broker: BrokerDep
                            ) -> Response:
    """Extend leases, or release them with 0 (a nack); each entry has its own result."""
    entries = [VisibilityEntry(e.receipt_handle, e.visibility_timeout)
               for e in request.entries]
    return json_response(results_json(await broker.change_visibility(queue, entries)))


@router.post("/retry", response_model=EntryResultOut, responses=errors(400, 404, 413, 422),
             dependencies=CHECKED)
async def retry(queue: str, request: RetryRequest, broker: BrokerDep) -> Response:
    """End a lease and redeliver after `delay_seconds`, keeping the receive count and
    recording `error` (a worker's retry with backoff); `dead_letter` moves it to the
    queue's dead-letter queue now."""
    result = await broker.retry(queue, request.receipt_handle, request.delay_seconds,
                                request.error, dead_letter=request.dead_letter,
                                snooze=request.snooze)
    return json_response(entry_json(result))


@router.get("", response_model=PeekResponse, responses=errors(404, 422))
async def peek(queue: str, broker: BrokerDep, limit: int = 10,
               after: str | None = None) -> Response:
    """Look at messages without leasing them, oldest first (page with `after`)."""
    return json_response(peeked_json(await broker.peek(queue, limit, after)))
