"""`GET /v1/queues/{queue}/stream` (WebSocket): leased messages pushed as they arrive.

The protocol is `PROTOCOL` below, which /api-docs shows too (OpenAPI cannot describe a
WebSocket). Waiting is the broker's long poll (20 s at a time, woken by sends), never a tight
loop. A dropped connection just stops: its leases lapse after their timeout like any
consumer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from conveyor.broker.broker import Broker
from conveyor.broker.validation import MAX_VISIBILITY
from conveyor.errors import ConveyorError, QueueNotFound
from conveyor.http.errors import error_body
from conveyor.http.wire import received_json, results_json
from conveyor.models import VisibilityEntry

log = logging.getLogger("conveyor.stream")

PROTOCOL = """\
`GET /v1/queues/{queue}/stream` is a WebSocket that pushes leased messages as they arrive
(`ws://`, or `wss://` with TLS; an API key, when one is needed, as a header or `?api_key=`).
Frames are JSON text. The client grants credits and the server pushes at most that many
messages, each leased as by a receive (`?visibility_timeout=S` overrides the queue's);
delivery costs a credit, so a client that grants one credit per finished message holds at
most its initial grant. Acks and nacks go over the same socket. A dropped connection's
leases lapse like any consumer's.

```
client -> server
    {"type": "credit", "credits": N}                 grant N more (credits held: <= 10,000)
    {"type": "ack",  "receipt_handles": [...]}       delete (as POST .../messages/delete)
    {"type": "nack", "receipt_handles": [...]}       release now (visibility 0)
    any frame may carry "id", echoed in its answer
server -> client
    {"type": "messages", "messages": [...]}          as the receive route's messages
    {"type": "acked" | "nacked", "id", "results": [{"receipt_handle", "status", "message"}]}
    {"type": "error", "id", "error": {"code", "message"}}
    a fatal error (unknown queue) is an error frame, then close code 4404 or 4400
```
"""

router = APIRouter(tags=["stream"])

MAX_CREDITS = 10_000
MAX_BATCH = 100  # messages per frame and per claim
WAIT_SECONDS = 20


class _Session:
    """One socket: the credits it granted and the two loops that serve it."""

    def __init__(self, socket: WebSocket, broker: Broker, queue: str,
                 visibility_timeout: int | None) -> None:
        self.socket = socket
        self.broker = broker
        self.queue = queue
        self.visibility_timeout = visibility_timeout
        self.credits = 0
        self.granted = asyncio.Event()
        self._send_lock = asyncio.Lock()

    async def send(self, data: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.socket.send_text(orjson.dumps(data).decode())

    async def push(self) -> None:
        """Lease and push messages while credits last; wait for credits otherwise."""
        while True:
            await self.granted.wait()
            messages = await self.broker.receive(
                self.queue, min(self.credits, MAX_BATCH), self.visibility_timeout,
                wait_seconds=WAIT_SECONDS)
            if not messages:
                continue
            self.credits -= len(messages)
            if self.credits <= 0:
                self.granted.clear()
            await self.send({"type": "messages", **received_json(messages)})

    async def read(self) -> None:
        """Handle credit, ack and nack frames until the client goes."""
        while True:
            message = await self.socket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
            text = message.get("text")
            if text is None:  # a binary frame: say so rather than fail the whole stream
                await self.send({"type": "error", **error_body(
                    "malformed_json", "Frames are JSON text; a binary frame is not read.")})
                continue
            try:
                frame = orjson.loads(text)
            except orjson.JSONDecodeError:
                await self.send({"type": "error", **error_body(
                    "malformed_json", "A frame is not valid JSON.")})
                continue
            await self.handle(frame)

    async def handle(self, frame: Any) -> None:
        ref = frame.get("id") if isinstance(frame, dict) else None
        kind = frame.get("type") if isinstance(frame, dict) else None
        try:
            if kind == "credit":
                self.grant(frame.get("credits"))
            elif kind in ("ack", "nack"):
                handles = frame.get("receipt_handles")
                if not isinstance(handles, list) or not all(isinstance(h, str)
                                                            for h in handles):
                    raise _BadFrame("receipt_handles must be a list of strings.")
                if kind == "ack":
                    results = await self.broker.delete(self.queue, handles)
                else:
                    results = await self.broker.change_visibility(
                        self.queue, [VisibilityEntry(h, 0) for h in handles])
                await self.send({"type": f"{kind}ed", "id": ref, **results_json(results)})
            else:
                raise _BadFrame("type must be credit, ack or nack.")
        except _BadFrame as exc:
            await self.send({"type": "error", "id": ref,
                             **error_body("invalid_input", str(exc))})
        except QueueNotFound:
            raise
        except ConveyorError as exc:
            await self.send({"type": "error", "id": ref, **error_body(exc.code, exc.message)})

    def grant(self, credits: Any) -> None:
        if isinstance(credits, bool) or not isinstance(credits, int) or credits < 1:
            raise _BadFrame("credits must be a whole number of at least 1.")
        self.credits = min(self.credits + credits, MAX_CREDITS)
        self.granted.set()


class _BadFrame(Exception):
    """A frame of the wrong shape (answered with an error frame; the socket stays)."""


@router.websocket("/v1/queues/{queue}/stream")
async def stream(socket: WebSocket, queue: str, visibility_timeout: str | None = None
                 ) -> None:
    """Push leased messages up to the credits granted; take acks and nacks."""
    broker: Broker = socket.app.state.broker
    await socket.accept()
    # Parsed here, not by FastAPI: its refusal of a non-number is a bare 403 with no body.
    seconds = _whole_number(visibility_timeout)
    session = _Session(socket, broker, queue, seconds)
    try:
        await broker.queue(queue)
        if visibility_timeout is not None and (
                seconds is None or not 0 <= seconds <= MAX_VISIBILITY):
            raise _BadFrame(f"visibility_timeout must be between 0 and {MAX_VISIBILITY}.")
    except QueueNotFound as exc:
        await _fail(session, 4404, exc.code, exc.message)
        return
    except _BadFrame as exc:
        await _fail(session, 4400, "invalid_input", str(exc))
        return
    pusher = asyncio.create_task(session.push())
    reader = asyncio.create_task(session.read())
    try:
        done, _ = await asyncio.wait({pusher, reader}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            failure = task.exception()
            if isinstance(failure, ConveyorError):
                await _fail(session, 4404 if isinstance(failure, QueueNotFound) else 1011,
                            failure.code, failure.message)
            elif failure is not None and not isinstance(failure, WebSocketDisconnect):
                log.error("stream on %s failed", queue, exc_info=failure)
    finally:
        for task in (pusher, reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _whole_number(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


async def _fail(session: _Session, close_code: int, code: str, message: str) -> None:
    with contextlib.suppress(Exception):  # the client may be gone already
        await session.send({"type": "error", "id": None, **error_body(code, message)})
        await session.socket.close(close_code)
