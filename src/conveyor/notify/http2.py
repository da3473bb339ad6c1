"""A bounded pool of HTTP/2 connections to one origin, on asyncio and `h2` (python-hyper's
HTTP/2 state machine, the one httpx and hypercorn build on).

Why not httpx's own HTTP/2: the mobile channels send one small request per notification,
hundreds of thousands of them, so the client's CPU per request is the cost that counts.
Against the same local peer (benchmarks/mobile.py) httpx with `http2=True` spent several
times the CPU per request that this thin layer over the same `h2` does (figures in the
README); TLS, HPACK and framing are `h2`'s and `ssl`'s either way.

Each connection multiplexes up to the server's `MAX_CONCURRENT_STREAMS` requests (APNs
and FCM allow hundreds); a request takes the least busy live connection, opening another
(up to `size`) when all are full, and waits when the pool is saturated. Flow control is
honoured both ways; a GOAWAY or a dropped connection fails only the requests it cut off,
as `H2Error(retryable=True)`, and the next request opens a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import FlowControlError, ProtocolError, StreamClosedError
from hpack import NeverIndexedHeaderTuple

from conveyor.notify.channel import Channel
from conveyor.notify.models import Item
from conveyor.notify.outcomes import Result

__all__ = ["H2Error", "H2Pool", "H2Response", "unindexed", "without_huffman"]

H2Response = tuple[int, dict[str, str], bytes]
"""(status, headers with lower-case names, body)."""


def without_huffman(conn: H2Connection) -> H2Connection:
    """Make `conn` send header literals raw instead of Huffman-coded. hpack codes Huffman
    in pure Python, a character at a time, and every mobile push carries values seen once
    (a 64-digit device token in the path, a collapse id, a message id): profiled against
    the local APNs peer, coding and decoding them took over a third of both sides' CPU.
    The cost is a few dozen bytes a request; indexing and the rest of HPACK stay."""
    encoder = conn.encoder
    plain = functools.partial(type(encoder).encode, encoder, huffman=False)
    setattr(encoder, "encode", plain)  # noqa: B010  # an instance's method, on purpose
    return conn


def unindexed(name: str, value: str) -> tuple[str, str]:
    """A header HPACK sends as a literal and keeps out of its table: a secret (the
    bearer token, as h2's outbound normalization did) or a value seen once (an id), which
    would only evict the entries that repeat and lengthen every later table search."""
    return cast(tuple[str, str], NeverIndexedHeaderTuple(name, value))


class _ClientH2(H2Connection):
    """h2's client connection, without two costs per request that grow with the streams
    in flight or re-check what never varies.

    - h2 counts the open streams before each new one by walking all of them (pruning the
      closed ones as it goes): with hundreds in flight that walk was ~11% of a push
      request's CPU. The streams h2 still holds, closed or not, bound the open ones from
      above, so while they are fewer than the server's limit the new stream fits without
      a walk; past that (or `_PRUNE_AT`) h2 walks and prunes as before.
    - Outbound validation and normalization re-checked, per request, pseudo-headers and
      names that are literals in this module and its channels (lower case, no connection
      headers, `:path` never empty); no per-message value is validated there either
      (h2 checks values only inbound), so nothing a caller sends is less checked."""

    _PRUNE_AT = 256

    def __init__(self) -> None:
        super().__init__(H2Configuration(
            client_side=True, header_encoding="utf-8", validate_inbound_headers=False,
            validate_outbound_headers=False, normalize_outbound_headers=False))

    @property
    def open_outbound_streams(self) -> int:
        """An upper bound while it is under the limit; the exact count (pruning) past it."""
        held = len(self.streams)
        if held < min(self.remote_settings.max_concurrent_streams, self._PRUNE_AT):
            return held
        return self._open_streams(1)


class H2Error(Exception):
    """A request that got no response (connection refused, reset, GOAWAY, timeout)."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class _Stream:
    __slots__ = ("body", "future", "headers", "pending", "status")

    def __init__(self, future: asyncio.Future[H2Response], body: bytes) -> None:
        self.future = future
        self.pending = body  # request body not yet sent (flow control)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection and its open streams."""

    def __init__(self, authority: str) -> None:
        self.authority = authority
        # Responses come from the provider we chose to trust: their headers are not
        # re-validated (that costs more than reading them); see `_ClientH2` for ours.
        self.h2 = without_huffman(_ClientH2())
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.max_streams = 100  # until the server's SETTINGS say otherwise
        self.closed = False
        self._flush_soon = False

    # protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(16 * 1024 * 1024)  # responses never wait
        self.transport.write(self.h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(f"connection lost: {exc!r}" if exc else "connection closed")

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            self._fail_all(f"HTTP/2 protocol error: {exc!r}")
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    for name, value in event.headers:  # str: header_encoding is set
                        key, text = str(name), str(value)
                        if key == ":status":
                            stream.status = int(text)
                        else:
                            stream.headers[key] = text
            elif isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None and event.data:
                    stream.body += event.data
                if event.flow_controlled_length:
                    self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                      event.stream_id)
            elif isinstance(event, StreamEnded):
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None and not stream.future.done():
                    stream.future.set_result((stream.status, stream.headers,
                                              bytes(stream.body)))
            elif isinstance(event, StreamReset):
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None and not stream.future.done():
                    stream.future.set_exception(H2Error(
                        f"stream reset by the server ({event.error_code!r})"))
            elif isinstance(event, WindowUpdated):
                self._send_pending()
            elif isinstance(event, RemoteSettingsChanged):
                self.max_streams = self.h2.remote_settings.max_concurrent_streams
            elif isinstance(event, ConnectionTerminated):
                self.closed = True  # GOAWAY: streams above last_stream_id were not processed
                last = event.last_stream_id or 0
                for sid in [s for s in self.streams if s > last]:
                    stream = self.streams.pop(sid)
                    if not stream.future.done():
                        stream.future.set_exception(H2Error("GOAWAY before processing"))
        self._write()

    # requests ---------------------------------------------------------------------
    @property
    def free(self) -> int:
        """How many more streams this connection may open now."""
        return 0 if self.closed else self.max_streams - len(self.streams)

    def request(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
                ) -> asyncio.Future[H2Response]:
        """Start a request; its response arrives on the returned future."""
        future: asyncio.Future[H2Response] = asyncio.get_running_loop().create_future()
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(":method", method), (":scheme", "https"),
                                   (":authority", self.authority), (":path", path),
                                   *headers], end_stream=not body)
        stream = self.streams[sid] = _Stream(future, body)
        if body:
            self._send_body(sid, stream)
        # One write at the end of this loop pass for every request started in it (a
        # batch's gather starts hundreds): one TLS record and one send instead of one
        # each, and the server reads them in one go too.
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_soon = False
        self._write()

    def cancel(self, future: asyncio.Future[H2Response]) -> None:
        """Reset the stream of a request given up on (a timeout)."""
        for sid, stream in list(self.streams.items()):
            if stream.future is future:
                del self.streams[sid]
                with contextlib.suppress(StreamClosedError, ProtocolError):
                    self.h2.reset_stream(sid)
                self._write()
                return

    def _send_pending(self) -> None:
        """Send what the flow-control windows now allow of every stream's body."""
        for sid, stream in self.streams.items():
            if stream.pending:
                self._send_body(sid, stream)

    def _send_body(self, sid: int, stream: _Stream) -> None:
        """Send what the windows allow of one stream's body (a new request's: looping
        over every open stream per request made a batch's requests quadratic)."""
        while stream.pending:
            try:
                window = min(self.h2.local_flow_control_window(sid),
                             self.h2.max_outbound_frame_size)
            except (StreamClosedError, ProtocolError):
                stream.pending = b""
                break
            if window <= 0:
                break
            chunk, stream.pending = stream.pending[:window], stream.pending[window:]
            try:
                self.h2.send_data(sid, chunk, end_stream=not stream.pending)
            except (FlowControlError, StreamClosedError):
                stream.pending = b""

    def _write(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail_all(self, reason: str) -> None:
        self.closed = True
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            if not stream.future.done():
                stream.future.set_exception(H2Error(reason))

    def close(self) -> None:
        """Say goodbye and close."""
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.h2.close_connection()
                self._write()
            except ProtocolError:
                pass
            self.transport.close()
        self.closed = True


class H2Pool:
    """Up to `size` HTTP/2 connections to `https://host:port`, shared by every request."""

    def __init__(self, host: str, port: int = 443, *, size: int = 2,
                 context: ssl.SSLContext | None = None, timeout: float = 30.0,
                 connect_timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.size = max(1, size)
        self.context = context or ssl.create_default_context()
        self.context.set_alpn_protocols(["h2"])
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.authority = host if port == 443 else f"{host}:{port}"
        self._conns: list[_Connection] = []
        self._opening = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @classmethod
    def for_url(cls, url: str, **kwargs: Any) -> H2Pool:
        """A pool for an `https://host[:port]` origin."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"an HTTP/2 origin is https://host[:port], not {url!r}")
        return cls(parts.hostname, parts.port or 443, **kwargs)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        self._opening += 1
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                lambda: _Connection(self.authority), self.host, self.port,
                ssl=self.context, server_hostname=self.host), self.connect_timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise H2Error(f"cannot connect to {self.authority}: {exc!r}") from None
        finally:
            self._opening -= 1
        assert conn.transport is not None
        ssl_object = conn.transport.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            conn.close()
            raise H2Error(f"{self.authority} does not speak HTTP/2", retryable=False)
        self._conns.append(conn)
        return conn

    async def _connection(self) -> _Connection:
        while True:
            self._conns = [c for c in self._conns if not c.closed or c.streams]
            live = [c for c in self._conns if c.free > 0]
            best = max(live, key=lambda c: c.free, default=None)
            # open another while the best one is past half full and the pool has room
            if (best is None or best.free * 2 < best.max_streams) and \
                    len(self._conns) + self._opening < self.size:
                try:
                    return await self._connect()
                except H2Error:
                    if best is None:
                        raise
            if best is not None:
                return best
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _wake(self, _: object = None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def request(self, method: str, path: str, headers: list[tuple[str, str]],
                      body: bytes = b"") -> H2Response:
        """Send one request and wait for its whole response (raises `H2Error`)."""
        conn = await self._connection()
        try:
            future = conn.request(method, path, headers, body)
        except (ProtocolError, StreamClosedError) as exc:
            conn.closed = True
            raise H2Error(f"cannot open a stream: {exc!r}") from None
        future.add_done_callback(self._wake)
        timer = asyncio.get_running_loop().call_later(self.timeout, self._expire, conn, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _expire(self, conn: _Connection, future: asyncio.Future[H2Response]) -> None:
        if not future.done():
            conn.cancel(future)
            future.set_exception(H2Error(f"no response within {self.timeout:g} s"))

    async def close(self) -> None:
        """Close every connection."""
        for conn in self._conns:
            conn.close()
        self._conns = []
        await asyncio.sleep(0)


class Http2Channel(Channel):
    """A channel that posts each notification as its own stream, concurrently, over an
    `H2Pool` to `self.url` (FCM, APNs). Subclasses set `url`, `connections`,
    `ssl_context` and `timeout`, and `_post` one rendered payload."""

    url: str
    connections: int
    ssl_context: ssl.SSLContext | None
    timeout: float
    _pool: H2Pool | None = None

    async def open(self) -> None:
        """The HTTP/2 pool (connections open on first use)."""
        if self._pool is None:
            self._pool = H2Pool.for_url(self.url, size=self.connections,
                                        context=self.ssl_context, timeout=self.timeout)

    async def _post(self, payload: Any) -> Result:
        raise NotImplementedError

    async def send_many(self, items: Sequence[Item], payloads: Sequence[Any]) -> list[Result]:
        """One stream per notification, concurrently over the pool."""
        if self._pool is None:
            await self.open()
        return list(await asyncio.gather(*(self._post(p) for p in payloads)))

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
