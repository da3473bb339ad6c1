"""A small HTTP/2-over-TLS server on asyncio and `h2`, for the local FCM and APNs peers
(demo, benchmarks and tests; not the library).

Real HTTP/2 on a socket (ALPN `h2`, HPACK, flow control, many streams on a connection),
with a synchronous handler per request: the peers only check and record, so a handler
returning `(status, headers, body)` keeps a request at a few dozen microseconds, which
matters when the peer shares two cores with the run it serves.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes

from conveyor.notify.http2 import without_huffman

__all__ = ["H2Server", "Request", "Response", "server_context"]


@dataclass(slots=True)
class Request:
    """One request as received: method, path, headers (lower-case names), body, and
    which connection it came on (a number unique while the server runs)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int = 0


Response = tuple[int, list[tuple[str, str]], bytes]
"""(status, headers, body)."""

Handler = Callable[[Request], Response]


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A TLS server context offering only HTTP/2 by ALPN."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    ctx.set_alpn_protocols(["h2"])
    return ctx


class _Connection(asyncio.Protocol):
    def __init__(self, handler: Handler, max_streams: int, live: set[_Connection]) -> None:
        self.handler = handler
        self.live = live
        # Requests are validated as h2 does by default (they are the client under test);
        # the peer's own responses, a few fixed headers, are not re-checked on the way out.
        self.h2 = without_huffman(H2Connection(H2Configuration(
            client_side=False, header_encoding="utf-8", validate_outbound_headers=False,
            normalize_outbound_headers=False)))
        self.max_streams = max_streams
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        self.pending: dict[int, bytes] = {}  # response bodies waiting for flow control

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.live.add(self)
        self.h2.local_settings.max_concurrent_streams = self.max_streams
        self.h2.initiate_connection()
        self.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams})
        self.transport.write(self.h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self.live.discard(self)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            events = self.h2.receive_data(data)
        except ProtocolError:
            self.transport.write(self.h2.data_to_send())
            self.transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                self.streams[event.stream_id] = (list(event.headers), bytearray())  # type: ignore[arg-type]
            elif isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None and event.data:
                    stream[1].extend(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                  event.stream_id)
            elif isinstance(event, StreamEnded):
                self._answer(event.stream_id)
            elif isinstance(event, StreamReset):
                self.streams.pop(event.stream_id, None)
                self.pending.pop(event.stream_id, None)
            elif isinstance(event, WindowUpdated):
                self._flush()
            elif isinstance(event, ConnectionTerminated):
                self.transport.close()
        self.transport.write(self.h2.data_to_send())

    def _answer(self, stream_id: int) -> None:
        raw, body = self.streams.pop(stream_id, ([], bytearray()))
        headers = {k: v for k, v in raw}
        request = Request(headers.get(":method", ""), headers.get(":path", ""), headers,
                          bytes(body), id(self))
        try:
            status, extra, content = self.handler(request)
        except Exception:  # a peer bug answers 500 rather than hanging the stream
            status, extra, content = 500, [], b"peer error"
        out = [(":status", str(status)), *extra]
        if content:
            out.append(("content-length", str(len(content))))
        try:
            self.h2.send_headers(stream_id, out, end_stream=not content)
        except StreamClosedError:
            return
        if content:
            self.pending[stream_id] = content
            self._flush()

    def _flush(self) -> None:
        for stream_id, content in list(self.pending.items()):
            while content:
                try:
                    window = min(self.h2.local_flow_control_window(stream_id),
                                 self.h2.max_outbound_frame_size)
                except StreamClosedError:
                    content = b""
                    break
                if window <= 0:
                    break
                chunk, content = content[:window], content[window:]
                self.h2.send_data(stream_id, chunk, end_stream=not content)
            if content:
                self.pending[stream_id] = content
            else:
                del self.pending[stream_id]


class H2Server:
    """Serves `handler` over HTTP/2 with TLS on `host:port` (port 0: a free one)."""

    def __init__(self, handler: Handler, context: ssl.SSLContext, host: str = "127.0.0.1",
                 port: int = 0, max_streams: int = 1000) -> None:
        self.handler = handler
        self.context = context
        self.host = host
        self.port = port
        self.max_streams = max_streams
        self._server: asyncio.Server | None = None
        self._live: set[_Connection] = set()

    async def start(self) -> int:
        """Listen; returns the port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self.handler, self.max_streams, self._live), self.host, self.port,
            ssl=self.context)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        """Stop listening and drop the connections."""
        if self._server is not None:
            self._server.close()
            for conn in list(self._live):  # wait_closed waits for these on 3.12+
                if conn.transport is not None:
                    conn.transport.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> H2Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
