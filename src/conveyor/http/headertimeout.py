"""A bound on how long a connection may take to send a request's head (slow clients).

uvicorn (0.55 included) has no such bound: its keep-alive timer runs only between a response
and the next request's first byte, and is cancelled by that byte, so a connection that sends
half a request head and stops (or trickles one byte at a time) is kept forever, holding one
of the `FileGuard.max_connections` slots. A handful of them ("slowloris") and every other
client gets 503 `too_many_connections`.

`protocol_with_header_timeout(seconds)` is uvicorn's httptools protocol (the one its `auto`
choice picks, httptools being a dependency) with a deadline: armed when the connection is
made and when a later request's first byte arrives, never pushed back by further bytes, and
disarmed once the head is complete. What follows the head (a body uploaded at any pace, a
handler that waits, a WebSocket after its upgrade) and the idle time between requests
(uvicorn's keep-alive timeout) are not bounded by it. At the deadline a request that had
begun is answered 408 and the connection closed; one that never sent a byte is just closed.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from conveyor.config import DEFAULT_HEADER_TIMEOUT

log = logging.getLogger("conveyor.serve")

LINGER_SECONDS = 1.0
"""After the deadline, how long closing may wait for the peer to take the 408 before the
connection is cut (a peer that reads nothing must not keep its slot that way either)."""

_BODY = orjson.dumps({"error": {"code": "request_timeout",
                                 "message": "The request head took too long to arrive."}})
TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
             b"content-length: " + str(len(_BODY)).encode() + b"\r\nconnection: close\r\n\r\n"
             + _BODY)
"""The answer to a request whose head did not arrive in time."""


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head is late."""

    header_timeout = DEFAULT_HEADER_TIMEOUT
    """Seconds from the connection (or a later request's first byte) to the head's end."""

    _deadline: asyncio.TimerHandle | None = None
    _linger: asyncio.TimerHandle | None = None
    _begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection (uvicorn) and give it `header_timeout` to send a head."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the timers, then let uvicorn end the connection."""
        self._disarm()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A request's first byte: its head is due within `header_timeout` (unless already)."""
        self._begun = True
        self._arm()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        """The head arrived in time: what follows is the handler's business."""
        self._disarm()
        self._begun = False
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._deadline is None:  # once per head: a trickle of bytes does not reset it
            self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport.is_closing():
            return
        log.debug("closing a connection whose request head took over %.1f s",
                  self.header_timeout)
        # a pipelined head after a response still being written: no 408 in its middle
        if self._begun and (self.cycle is None or self.cycle.response_complete):
            transport.write(TIMED_OUT)
        transport.close()
        self._linger = self.loop.call_later(LINGER_SECONDS, transport.abort)


def protocol_with_header_timeout(seconds: float) -> type[HeaderTimeoutProtocol]:
    """`HeaderTimeoutProtocol` with `seconds` for its deadline (for `uvicorn.Config(http=)`)."""

    class Protocol(HeaderTimeoutProtocol):
        header_timeout = seconds

    return Protocol
