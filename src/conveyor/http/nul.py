"""A NUL character in a request's path or query string is bad input, refused before any
route reads it, as pure ASGI middleware.

PostgreSQL's text cannot hold NUL: a query parameter or path segment carrying one (`%00`)
reached the database and came back as a 500 `storage_error` on PostgreSQL, while SQLite
answered 200 or 404. Bodies are checked where they are parsed (`http.parse.check_body`);
this is the same rule for the URL, in one place for every route (API, dashboard, stream).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.http.errors import error_response

__all__ = ["NoNul", "has_nul"]


def has_nul(scope: Scope) -> bool:
    """Whether the decoded path or the raw query string holds a NUL character."""
    query = scope.get("query_string", b"")
    return "\x00" in scope.get("path", "") or b"\x00" in query or b"%00" in query


class NoNul:
    """Answer 422 `invalid_input` to a request with a NUL in its path or query string (a
    WebSocket is closed with 1008, policy violation)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not has_nul(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = error_response(422, "invalid_input", "The request's path and query "
                                  "string must not contain a NUL character (%00).")
        await response(scope, receive, send)
