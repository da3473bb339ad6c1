"""`Stream`: consume a queue over the server's WebSocket (`/v1/queues/{queue}/stream`).

    async with Stream("http://127.0.0.1:8600", "emails", credits=20) as stream:
        async for message in stream:
            await handle(message)
            await stream.ack(message)

The server pushes at most as many messages as the credits granted. With `auto_credit` (the
default) every ack or nack grants one credit back, so at most `credits` messages are ever
leased to this consumer at once, like a prefetch count. Messages not acknowledged before
their lease ends are delivered again (to anyone), as with any receive; closing the stream,
or losing the connection, leaves their leases to lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conveyor.client._calls import message_of
from conveyor.client._errors import ServerUnavailable, error_from
from conveyor.errors import ConveyorError, QueueNotFound
from conveyor.models import EntryResult, Message
from conveyor.tasks import stop_task

__all__ = ["Stream"]

Acked = Message | str
"""A message, or its receipt handle."""


class Stream:
    """A WebSocket consumer of one queue: iterate to receive; `ack`, `nack`, `grant`.
    `api_key` is sent as a bearer token, for a server that requires keys."""

    def __init__(self, url: str, queue: str, *, credits: int = 10,
                 visibility_timeout: int | None = None, auto_credit: bool = True,
                 open_timeout: float = 10.0, api_key: str | None = None) -> None:
        base = url.rstrip("/")
        scheme, _, rest = base.partition("://")
        ws = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        self.url = f"{ws}://{rest}/v1/queues/{quote(queue, safe='')}/stream"
        if visibility_timeout is not None:
            self.url += f"?visibility_timeout={int(visibility_timeout)}"
        self.queue = queue
        self.credits = credits
        self.auto_credit = auto_credit
        self.open_timeout = open_timeout
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else None
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Message | BaseException] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[list[EntryResult]]] = {}
        self._ids = itertools.count(1)
        self._failure: BaseException | None = None
        self._closed = False

    # lifecycle ------------------------------------------------------------------------
    async def open(self) -> Stream:
        """Connect and grant the initial credits."""
        try:
            self._socket = await connect(self.url, open_timeout=self.open_timeout,
                                         max_size=None, additional_headers=self._headers)
        except InvalidStatus as exc:  # refused before the upgrade: 401, 403, 404...
            try:
                data = orjson.loads(exc.response.body or b"null")
            except orjson.JSONDecodeError:
                data = None
            raise error_from(exc.response.status_code, data) from exc
        except (OSError, TimeoutError) as exc:
            raise ServerUnavailable(f"{self.url}: {exc or type(exc).__name__}") from exc
        self._reader = asyncio.create_task(self._read())
        if self.credits:
            try:
                await self.grant(self.credits)
            except ConveyorError:
                if self._failure is None:
                    raise
                # The server already ended the stream (an unknown queue, say): the first
                # receive raises why, whether or not the close beat our credits.
        return self

    async def close(self) -> None:
        """Close the socket; unacknowledged leases lapse after their timeout."""
        self._closed = True
        if self._socket is not None:
            await self._socket.close()
        await stop_task(self._reader)
        self._fail(ServerUnavailable("The stream is closed."))

    async def __aenter__(self) -> Stream:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # receiving --------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.receive()
            except ServerUnavailable:
                if self._closed:
                    return  # closed by us: the iteration just ends
                raise

    async def receive(self, timeout: float | None = None) -> Message:
        """The next pushed message (TimeoutError after `timeout` seconds)."""
        item = await asyncio.wait_for(self._inbox.get(), timeout)
        if isinstance(item, BaseException):
            self._inbox.put_nowait(item)  # every later call fails the same way
            raise item
        return item

    # acknowledging ----------------------------------------------------------------------
    async def grant(self, credits: int) -> None:
        """Allow the server to push `credits` more messages."""
        await self._send({"type": "credit", "credits": credits})

    async def ack(self, *messages: Acked) -> list[EntryResult]:
        """Delete messages; each result says `ok`, `stale` (lease lost) or `invalid`."""
        return await self._settle("ack", messages)

    async def nack(self, *messages: Acked) -> list[EntryResult]:
        """Release messages now, for redelivery."""
        return await self._settle("nack", messages)

    async def _settle(self, kind: str, messages: Sequence[Acked]) -> list[EntryResult]:
        handles = [m.receipt_handle if isinstance(m, Message) else m for m in messages]
        ref = next(self._ids)
        future: asyncio.Future[list[EntryResult]] = asyncio.get_running_loop().create_future()
        self._waiting[ref] = future
        try:
            await self._send({"type": kind, "id": ref, "receipt_handles": handles})
            results = await future
        finally:
            self._waiting.pop(ref, None)
        if self.auto_credit and handles:
            await self.grant(len(handles))
        return results

    # the socket -------------------------------------------------------------------------
    async def _send(self, frame: dict[str, Any]) -> None:
        if self._failure is not None:
            raise self._failure
        if self._socket is None:
            raise ServerUnavailable("The stream is not open.")
        try:
            await self._socket.send(orjson.dumps(frame).decode())
        except ConnectionClosed as exc:
            # The server may have said why before closing (an unknown queue, say): let
            # the reader hand over what arrived, and raise that rather than "closed".
            if self._reader is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self._reader), 1.0)
            if self._failure is not None:
                raise self._failure from exc
            raise ServerUnavailable(f"{self.url}: connection closed") from exc

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for raw in self._socket:
                self._dispatch(orjson.loads(raw))
        except ConnectionClosed:
            pass
        code = self._socket.close_code
        if self._failure is None and code == 4404:
            self._fail(QueueNotFound(f"Queue {self.queue[:100]!r} does not exist."))
        if self._failure is None:
            self._fail(ServerUnavailable(f"{self.url}: connection closed ({code})"))

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "messages":
            for item in frame["messages"]:
                self._inbox.put_nowait(message_of(self.queue, item))
            return
        future = self._waiting.get(frame.get("id") or 0)
        if kind in ("acked", "nacked") and future is not None and not future.done():
            future.set_result([EntryResult(r["receipt_handle"], r["status"], r.get("message"))
                               for r in frame["results"]])
        elif kind == "error":
            error = error_from(400, frame)
            if future is not None and not future.done():
                future.set_exception(error)
            elif frame.get("id") is None:  # not about one request: the stream is over
                self._fail(error)

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(self._failure)
        self._inbox.put_nowait(self._failure)
