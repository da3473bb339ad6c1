"""A keep-alive HTTP/1.1 client for many small requests to a few origins (Web Push's
POSTs, one per notification), on asyncio and `httptools` (llhttp, Node's C parser, the one
uvicorn uses).

Why not aiohttp's client: at a million notifications the client's CPU per request is the
cost that counts, and aiohttp's (its request and response objects, URL handling, timers,
cookies, tracing hooks) was ~140 us of a Web Push request's ~240 here, more than the
RFC 8291 encryption. This layer writes one pre-built request and feeds the answer to the
parser, and keeps nothing else; `benchmarks/mobile.py` measures both.

One request at a time per connection (no pipelining: a POST's answer must come before the
next is sent), up to `limit` connections in all, kept alive and reused per origin. A
request on a reused connection that the server closed before answering a byte is sent
once more on a new one (a server may drop an idle connection just as we reuse it; it
never saw the request). Every failure to get an answer is an `H1Error` (retryable).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["USER_AGENT", "H1Error", "H1Pool", "H1Response", "split_url"]

H1Response = tuple[int, str, dict[str, str], bytes]
"""(status, reason, headers with lower-case names, body)."""

_FORBIDDEN = frozenset("\r\n\0")
USER_AGENT = "conveyor"
"""Sent with every request: some services and the firewalls before them refuse a request
that names no client."""


class H1Error(Exception):
    """A request that got no (whole) answer: refused, reset, closed, timed out."""


def _clean(text: str, what: str) -> str:
    """`text`, if it cannot end a header line or the request line early."""
    if _FORBIDDEN.intersection(text):
        raise ValueError(f"{what} holds a line break or NUL")
    return text


def split_url(url: str) -> tuple[tuple[str, str, int], str, str]:
    """(origin (scheme, host, port), Host header, request target) of an http(s) URL that
    can be sent as it is; `ValueError` says why one cannot. Checked whole, before
    `urlsplit`, which drops line breaks and tabs instead of refusing them."""
    if " " in _clean(url, "the URL"):
        raise ValueError("the URL holds a space")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:200]!r}")
    origin = (parts.scheme, parts.hostname,
              parts.port or (443 if parts.scheme == "https" else 80))
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return origin, parts.netloc.rpartition("@")[2], target  # never the user:password


class _Connection(asyncio.Protocol):
    """One connection: at most one request in flight, its answer parsed as it comes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.future: asyncio.Future[H1Response] | None = None
        self.closed = False
        self.reused = False
        self.answered = False  # a byte of the current answer arrived
        self.expired = False
        self._complete = False  # the current answer's headers are in
        self._reason = ""
        self._headers: dict[str, str] = {}
        self._body = bytearray()

    # protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._complete and exc is None and not {"content-length", "transfer-encoding"
                                                    } & self._headers.keys():
            self.on_message_complete()  # an answer whose body ends with the connection
        self._fail(f"connection lost: {exc!r}" if exc else "connection closed")

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"malformed answer: {exc!r}")
            self.close()

    # parser callbacks ------------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self._reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._complete = True

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # 1xx: the answer is still to come
            self._reason, self._headers, self._complete = "", {}, False
            return
        future, self.future = self.future, None
        self._complete = False
        answer = (self.parser.get_status_code(), self._reason, self._headers,
                  bytes(self._body))
        if not self.parser.should_keep_alive():
            self.close()
        if future is not None and not future.done():
            future.set_result(answer)

    # requests --------------------------------------------------------------------------
    def send(self, request: bytes) -> asyncio.Future[H1Response]:
        """Write one whole request; its answer arrives on the returned future."""
        assert self.transport is not None and self.future is None
        self.future = asyncio.get_running_loop().create_future()
        self.answered = self._complete = False
        self._reason, self._headers, self._body = "", {}, bytearray()
        self.transport.write(request)
        return self.future

    def _fail(self, reason: str) -> None:
        future, self.future = self.future, None
        if future is not None and not future.done():
            future.set_exception(H1Error(reason))

    def close(self) -> None:
        """Close (an answer half read cannot be followed by another request)."""
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class H1Pool:
    """Up to `limit` keep-alive connections, shared by every origin's requests."""

    def __init__(self, *, limit: int = 64, timeout: float = 30.0,
                 context: ssl.SSLContext | None = None, connect_timeout: float = 10.0
                 ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.context = context
        self._slots = asyncio.Semaphore(max(1, limit))
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            context = self.context or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                _Connection, host, port, ssl=context,
                server_hostname=host if context else None), self.connect_timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise H1Error(f"cannot connect to {host}:{port}: {exc!r}") from None
        return conn

    def _reuse(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None \
                    and not conn.transport.is_closing():
                conn.reused = True
                return conn
        return None

    async def request(self, method: str, url: str, headers: Mapping[str, str],
                      body: bytes = b"") -> H1Response:
        """Send one request and wait for its whole answer (raises `H1Error`, or
        `ValueError` for a URL or header that cannot be sent)."""
        origin, host, target = split_url(url)
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"
                 f"User-Agent: {USER_AGENT}\r\nContent-Length: {len(body)}\r\n"]
        lines += [f"{_clean(k, 'a header name')}: {_clean(v, 'a header value')}\r\n"
                  for k, v in headers.items()]
        request = "".join(lines).encode("latin-1") + b"\r\n" + body
        async with self._slots:
            conn = self._reuse(origin) or await self._connect(origin)
            try:
                answer = await self._exchange(conn, request)
            except H1Error:
                if not conn.reused or conn.answered or conn.expired:
                    raise
                # a stale keep-alive connection, closed before it saw this request
                conn = await self._connect(origin)
                answer = await self._exchange(conn, request)
            if not conn.closed:
                self._idle.setdefault(origin, []).append(conn)
            return answer

    async def _exchange(self, conn: _Connection, request: bytes) -> H1Response:
        future = conn.send(request)
        timer = asyncio.get_running_loop().call_later(self.timeout, self._expire, conn)
        try:
            return await future
        except asyncio.CancelledError:
            conn.close()  # its answer may still come: the connection cannot serve another
            raise
        finally:
            timer.cancel()

    def _expire(self, conn: _Connection) -> None:
        conn.expired = True
        conn._fail(f"no answer within {self.timeout:g} s")
        conn.close()

    async def close(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle = {}
        await asyncio.sleep(0)
