"""Request size limit, as pure ASGI middleware: a declared Content-Length over the limit is
refused before the app runs, and a streamed (chunked) body is refused once it passes the limit.

The 413 does not ask to close the connection: closing a socket with unread request bytes
resets it, and the client may then never see the answer. The server discards the rest of the
body instead, so the client reads a clean 413.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.http.errors import error_response


class RequestTooLarge(HTTPException):
    """The request body is over the limit (raised from `receive`, answered with 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class BodyLimit:
    """Answer 413 to any request whose body is larger than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await self._refuse(scope, receive, send, declared < 0)
                    return
                break
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, False)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, bad: bool) -> None:
        if bad:
            response = error_response(400, "bad_request", "Content-Length is invalid.")
        else:
            response = error_response(
                413, "request_too_large",
                f"The request body is larger than {self.max_bytes} bytes.")
        await response(scope, receive, send)
