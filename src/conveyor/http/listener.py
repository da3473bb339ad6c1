"""Accepting connections without running out of file handles, and saying so when near it.

`serve` runs uvicorn on a `ServingLoop`, whose `create_server(sock=...)` (what uvicorn calls
with the sockets `serve` bound) returns a `Listener` instead of asyncio's server. Why:

- Every accepted connection costs a file handle. Past `FileGuard.max_connections` (the soft
  RLIMIT_NOFILE less a reserve for the database, logs and the connections being refused)
  a new connection is answered at once, without reaching the app: `/healthz` 200 (the
  process is alive), `/readyz` 503 `not_ready` with the reason, anything else 503
  `too_many_connections` with `Retry-After`, and closed.
- When `accept()` fails for want of handles (EMFILE, ENFILE, ENOBUFS, ENOMEM) the listener
  stops watching the socket for `BACKOFF_SECONDS`; clients wait in the kernel's backlog.
  (CPython 3.11's own accept loop keeps calling `accept()` after EMFILE, up to the backlog
  of 2,048 times a tick, logging each with a traceback: measured, 1.4 million log lines
  and a 16 s `/healthz` with 600 long polls at a limit of 256.)
- Either way `FileGuard` logs one line per `LOG_INTERVAL` with the counts, and `/readyz`
  reports not ready while it lasts.
- A TLS handshake holds a slot too: it gets `handshake_timeout` (`serve` gives it the
  request-head timeout, `conveyor.http.headertimeout`), not asyncio's minute.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import orjson

from conveyor.rlimits import open_files_limit

log = logging.getLogger("conveyor.serve")

RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
BACKOFF_SECONDS = 0.5
"""How long accepting pauses after the process ran out of file handles."""
LOG_INTERVAL = 10.0
"""At most one log line per this many seconds about refused or postponed connections."""
HOLD_SECONDS = 2.0
"""`/readyz` says not ready until this long after the last refusal or postponement."""
ACCEPT_BATCH = 64
"""Connections accepted per wake-up of the listening socket, so one busy socket cannot
keep the loop from everything else."""
def reserve_for(limit: int) -> int:
    """File handles kept back from served connections (for the database, logs, and the
    connections being refused): an eighth of the limit, between 64 and 1,024."""
    return max(64, min(1024, limit // 8))


class FileGuard:
    """One process's file-handle budget for connections, its counts, and its log line.

    `max_connections` overrides the budget (the open-files limit less `reserve_for` it).

    `connections` counts the connections the app serves now (set by `serve` to the sum of
    its uvicorn servers' connections)."""

    def __init__(self, limit: int | None = None, max_connections: int | None = None) -> None:
        self.limit = open_files_limit() if limit is None else limit
        reserve = reserve_for(self.limit)
        self.max_connections = max_connections or max(1, self.limit - reserve)
        self.max_lingering = reserve // 4
        """Refused connections answered at once; past it, further ones are closed bare."""
        self.connections: Callable[[], int] = lambda: 0
        self.refused = 0
        """Connections answered 503 since the last log line."""
        self.postponed = 0
        """Times accepting paused for want of file handles since the last log line."""
        self.lingering = 0
        """Refused connections being answered now."""
        self.handing_over = 0
        """Accepted connections on their way to the app (for a moment counted twice once
        the app has one: the budget errs on the safe side)."""
        self._last_event = float("-inf")
        self._last_reason = "too_many_connections"
        self._last_log = float("-inf")
        self._flush: asyncio.TimerHandle | None = None

    def full(self) -> bool:
        """No room for another served connection."""
        return self.connections() + self.handing_over >= self.max_connections

    def reason(self) -> str | None:
        """Why this process is not ready to take connections now, or None."""
        if self.full():
            return "too_many_connections"
        if time.monotonic() - self._last_event < HOLD_SECONDS:
            return self._last_reason
        return None

    def note_refused(self) -> None:
        """A connection was answered 503 and closed."""
        self.refused += 1
        self._event("too_many_connections")

    def note_out_of_files(self) -> None:
        """`accept()` failed for want of file handles; accepting pauses."""
        self.postponed += 1
        self._event("too_many_open_files")

    def _event(self, reason: str) -> None:
        self._last_event = now = time.monotonic()
        self._last_reason = reason
        if self._flush is not None:
            return
        wait = self._last_log + LOG_INTERVAL - now
        if wait <= 0:
            self.flush()
        else:
            self._flush = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        """Log what was counted since the last line (nothing when nothing was)."""
        self._flush = None
        if not (self.refused or self.postponed):
            return
        done = [f"refused {self.refused} new connections with 503"] if self.refused else []
        if self.postponed:
            done.append(f"paused accepting {self.postponed} times for want of file handles")
        log.warning("file handles: %s since the last report; %d connections open, at most "
                    "%d served (open-files limit %d)", " and ".join(done), self.connections(),
                    self.max_connections, self.limit)
        self.refused = self.postponed = 0
        self._last_log = time.monotonic()


class Listener(asyncio.AbstractServer):
    """Accepts on one listening socket for a protocol factory, within a `FileGuard`
    (`handshake_timeout`: seconds for a TLS handshake, None for asyncio's default)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 factory: Callable[[], asyncio.BaseProtocol], tls: ssl.SSLContext | None,
                 guard: FileGuard, handshake_timeout: float | None = None) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = factory
        self._tls = tls
        self._guard = guard
        self._handshake_timeout = handshake_timeout if tls else None
        self._serving = False
        self._resume: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening socket (as `asyncio.Server.sockets`)."""
        return (self._sock,)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The loop this listener accepts on."""
        return self._loop

    def is_serving(self) -> bool:
        """Accepting (or paused for a moment, and going to again)."""
        return self._serving

    async def start_serving(self) -> None:
        """Watch the socket for connections."""
        if not self._serving:
            self._sock.setblocking(False)
            self._serving = True
            self._watch()

    async def serve_forever(self) -> None:
        """Accept until closed."""
        await self.start_serving()
        await self._closed.wait()

    def close(self) -> None:
        """Stop accepting (the socket itself is the caller's to close)."""
        if self._serving:
            self._serving = False
            self._loop.remove_reader(self._sock.fileno())
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        self._closed.set()

    async def wait_closed(self) -> None:
        """Wait for connections being handed over at close to be handed over."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _watch(self) -> None:
        self._resume = None
        if self._serving:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _pause(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._resume = self._loop.call_later(BACKOFF_SECONDS, self._watch)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in RESOURCE_ERRNOS:
                    log.exception("accept() failed; pausing for %.1f s", BACKOFF_SECONDS)
                self._guard.note_out_of_files()
                self._pause()
                return
            conn.setblocking(False)
            if self._guard.full():
                self._refuse(conn)
            else:
                self._guard.handing_over += 1
                self._spawn(self._serve(conn), conn)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(
                self._factory, conn, ssl=self._tls,
                ssl_handshake_timeout=self._handshake_timeout)
        finally:
            self._guard.handing_over -= 1

    def _refuse(self, conn: socket.socket) -> None:
        guard = self._guard
        guard.note_refused()
        if guard.lingering >= guard.max_lingering:
            conn.close()
            return
        guard.lingering += 1
        self._spawn(self._answer(conn), conn)

    async def _answer(self, conn: socket.socket) -> None:
        """Hand a refused connection to a `_Refusal` and wait until it is closed."""
        try:
            _, refusal = await self._loop.connect_accepted_socket(
                lambda: _Refusal(self._guard), conn, ssl=self._tls,
                ssl_handshake_timeout=5.0 if self._tls else None)  # not a minute, as usual
            await refusal.closed
        finally:
            self._guard.lingering -= 1

    def _spawn(self, handover: Any, conn: socket.socket) -> None:
        async def run() -> None:
            try:
                await handover
            except Exception:  # a handshake that failed, a peer that left: its own loss
                conn.close()
                log.debug("handing over a connection failed", exc_info=True)

        task = self._loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Refusal(asyncio.Protocol):
    """Reads the request head, answers it without the app, closes (lingering at most
    `LINGER_SECONDS` for the peer to read the answer)."""

    LINGER_SECONDS = 1.0

    def __init__(self, guard: FileGuard) -> None:
        self._guard = guard
        self._head = b""
        self._answered = False
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(self.LINGER_SECONDS,
                                                            transport.abort)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # a body still arriving: read and drop it until the peer or timer ends
        self._head += data
        if b"\r\n\r\n" in self._head or len(self._head) > 16_384:
            self._answer()

    def eof_received(self) -> bool | None:
        if not self._answered:
            self._answer()
        return None

    def _answer(self) -> None:
        assert self._transport is not None
        self._answered = True
        path = self._head.split(b"\r\n", 1)[0].split(b" ")[1:2]
        self._transport.write(refusal(path[0] if path else b"", self._guard))
        if self._transport.can_write_eof():
            self._transport.write_eof()
        else:  # TLS: no half-close
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.closed.done():
            self.closed.set_result(None)


def refusal(path: bytes, guard: FileGuard) -> bytes:
    """The HTTP response to a connection refused for want of file handles."""
    path = path.split(b"?", 1)[0]
    reason = guard.reason() or "too_many_connections"
    body: dict[str, Any]
    if path == b"/healthz":
        status, body = b"200 OK", {"status": "ok"}
    elif path == b"/readyz":
        status, body = b"503 Service Unavailable", {
            "status": "not_ready", "reason": reason, "schema_version": None,
            "known_version": None}
    else:
        status, body = b"503 Service Unavailable", {"error": {
            "code": reason, "message": "The server is at its limit of open connections; "
                                       "retry shortly."}}
    data = orjson.dumps(body)
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(data)).encode() + b"\r\nretry-after: 1\r\n"
            b"connection: close\r\n\r\n" + data)


class ServingLoop(asyncio.SelectorEventLoop):
    """An event loop whose servers on given sockets are `Listener`s within `guard` (with
    `handshake_timeout` for TLS handshakes)."""

    def __init__(self, guard: FileGuard, handshake_timeout: float | None = None) -> None:
        super().__init__()
        self.guard = guard
        self.handshake_timeout = handshake_timeout

    async def create_server(self, protocol_factory: Any, host: Any = None, port: Any = None,
                            *, sock: socket.socket | None = None, ssl: Any = None,
                            **options: Any) -> Any:
        """A `Listener` for an already-bound `sock`; asyncio's server otherwise."""
        if sock is None:
            return await super().create_server(protocol_factory, host, port, ssl=ssl,
                                               **options)
        listener = Listener(self, sock, protocol_factory, ssl, self.guard,
                            self.handshake_timeout)
        await listener.start_serving()
        return listener
