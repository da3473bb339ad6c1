"""The demo's FCM, APNs and Web Push peers on granian: HTTP/2 and TLS, or HTTP/1.1, in
Rust (hyper, rustls), embedded in the peer process's event loop, calling the same
synchronous handlers as the tests' servers (`FcmPeer.handle`, `ApnsPeer.handle`,
`PushEndpoint.answer`: every request's credentials and content checked as before).

Why: the peers stand in for providers whose CPU would not be on the demo's machine, so
every microsecond they spend is overhead of the test setup. Against the same APNs-shaped
requests from conveyor's HTTP/2 pool, pure-Python `h2` (HPACK, framing, header checks)
cost the peer about 170 us a request, granian about 45 (measured 2026-12-06 under a
load average of 14-18; see the note in the branch `sinkcpu`). hyper still checks each
request as an HTTP/2 server must (malformed or connection-specific headers, pseudo-header
rules, flow control).

The tests and `benchmarks/mobile.py` keep `h2server.H2Server` and aiohttp: their fault
cases (GOAWAY, resets, refused streams) need a server whose frames they control.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from conveyor.demo.h2server import Handler, Request

__all__ = ["RustServer", "available", "h2_app"]


class _App:
    """An RSGI application around a peer's handler."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        body = await proto()
        headers = dict(scope.headers.items())
        # scope.client ("address:port") is one TCP connection while it lasts: APNs' rule
        # on provider-token updates is per connection.
        request = Request(scope.method, scope.path, headers, body, hash(scope.client))
        try:
            status, extra, content = self.handler(request)
        except Exception:  # a peer bug answers 500 rather than hanging the stream
            status, extra, content = 500, [], b"peer error"
        proto.response_bytes(status, extra, content)


class RustServer:
    """Serves an RSGI `app` on `host:port` (a fixed port): HTTP/2 only with TLS when
    `cert` and `key` are given, else plain HTTP/1.1 (the Web Push endpoint)."""

    def __init__(self, app: Any, port: int, *, cert: str | Path | None = None,
                 key: str | Path | None = None, host: str = "127.0.0.1",
                 max_streams: int = 1000) -> None:
        from granian.constants import HTTPModes, Interfaces
        from granian.http import HTTP2Settings
        from granian.server.embed import Server

        self.host, self.port = host, port
        tls = cert is not None and key is not None
        self._server = Server(
            app, address=host, port=port, interface=Interfaces.RSGI,
            http=HTTPModes.http2 if tls else HTTPModes.http1,
            ssl_cert=Path(cert) if tls and cert else None,
            ssl_key=Path(key) if tls and key else None,
            http2_settings=HTTP2Settings(max_concurrent_streams=max_streams),
            backlog=1024, log_enabled=False)
        self._task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> RustServer:
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(200):  # until it accepts connections (10 s at most)
            if self._task.done():
                self._task.result()  # its error
                raise RuntimeError("granian stopped before it listened")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return self
        raise RuntimeError(f"granian did not listen on {self.host}:{self.port}")

    async def __aexit__(self, *exc: object) -> None:
        self._server.stop()  # type: ignore[no-untyped-call]
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)


def h2_app(handler: Handler) -> Any:
    """An RSGI application for one of `mobile_peers`' handlers."""
    return _App(handler)


def available() -> bool:
    """Whether granian is installed (else the peers stay on aiohttp and `h2server`)."""
    import importlib.util

    return importlib.util.find_spec("granian") is not None
