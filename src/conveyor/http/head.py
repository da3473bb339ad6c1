"""`HEAD` on every `GET` route, as pure ASGI middleware: the request is served as a `GET`
and the answer's body is dropped, so the status and headers (`Content-Length` included)
are the ones a `GET` gets (RFC 9110, 9.3.2).

FastAPI's routes take only the methods they name, so without this an uptime checker's or a
browser's `HEAD /healthz` got 405. One place here instead of a `HEAD` on each route; the
OpenAPI document keeps listing `GET` only, as routes do not change.

Not where a `GET` changes something: `GET /wq` leases messages, and a `HEAD` there (a
link checker's, a prefetch) would lease them to nobody, spending a receive each; it is a
405 as before (`LEASING_GETS`).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HEAD_MARK", "LEASING_GETS", "HeadAsGet", "head_allowed", "method_of"]

HEAD_MARK = "conveyor.head"
"""Set (True) in the scope of a `HEAD` request that is served as a `GET`."""


LEASING_GETS = frozenset({"/wq", "/wq/"})
"""Paths whose `GET` changes state (it receives): no `HEAD` there."""


def head_allowed(path: str) -> bool:
    """Whether `HEAD` is served as `GET` on `path`."""
    return path not in LEASING_GETS


def method_of(request: HTTPConnection) -> str:
    """The method the client sent (`HEAD` where the app sees a `GET`)."""
    return "HEAD" if request.scope.get(HEAD_MARK) else request.scope.get("method", "GET")


class HeadAsGet:
    """Serve `HEAD` as `GET` without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD" or \
                not head_allowed(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        # A copy: the server's own scope must still say HEAD, so that it expects no body
        # after a Content-Length (uvicorn reads `scope["method"]` from its dict).
        inner = {**scope, "method": "GET", HEAD_MARK: True}
        ended = False

        async def bodiless(message: Message) -> None:
            nonlocal ended
            kind = message["type"]
            if kind == "http.response.start":
                await send(message)
            elif kind in ("http.response.body", "http.response.pathsend") and not ended:
                if kind == "http.response.body" and message.get("more_body", False):
                    return  # a streamed body's chunks: none of them goes out
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            elif kind not in ("http.response.body", "http.response.pathsend"):
                await send(message)  # trailers, extensions: as they come

        try:
            await self.app(inner, receive, bodiless)
        finally:
            if "route" in inner:  # the request log's route template (`requestlog`)
                scope["route"] = inner["route"]
