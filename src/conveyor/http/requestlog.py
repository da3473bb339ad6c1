"""Request ids, access logs and per-route HTTP metrics, as one pure ASGI middleware.

Every HTTP request gets an id: the client's `X-Request-ID` when it is a short token, else a
new one. It is echoed in the response's `X-Request-ID`, set in a context variable that
`RequestIdFilter` adds to every log record made while the request runs, and logged with the
access line (`conveyor.access`). `configure_logging(json=True)` makes every record one JSON
object per line, extra fields included.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "conveyor_request_id", default=None)
"""The id of the request being handled (None outside a request)."""

access_log = logging.getLogger("conveyor.access")

RequestObserver = Callable[[str, str, int, float], None]
"""Told `(method, route template, status, seconds)` after each HTTP request."""

_MAX_ID = 64
_UNMATCHED = "<unmatched>"


def _client_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            ok = 0 < len(text) <= _MAX_ID and all(c.isalnum() or c in "-_.:" for c in text)
            return text if ok else None
    return None


def route_template(scope: Scope) -> str:
    """The path pattern of the route that handled a request (`/v1/queues/{queue}`), so
    that metrics have one series per route, not per queue."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(path, str):
        return str(scope.get("root_path", "")) + path
    return _UNMATCHED


class RequestLog:
    """Give each request an id, log it, and tell observers its route, status and time."""

    def __init__(self, app: ASGIApp, observers: list[RequestObserver] | None = None) -> None:
        self.app = app
        self.observers = observers if observers is not None else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = _client_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500 if scope["type"] == "http" else 101
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            elif message["type"] == "websocket.close":
                status = 1000
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            method = scope.get("method", "WS")
            route = route_template(scope)
            for observer in self.observers:
                observer(method, route, status, seconds)
            access_log.info("%s %s %s %.1fms", method, scope.get("path", ""), status,
                            seconds * 1000, extra={
                                "request_id": rid, "method": method, "path": scope.get("path", ""),
                                "route": route, "status": status,
                                "duration_ms": round(seconds * 1000, 3)})
            request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Put the current request id (or None) on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message`, then `[request ID]` when the record has one."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{text} [request {rid}]" if rid else text


def configure_logging(*, json_lines: bool = False, level: int = logging.INFO) -> None:
    """Log to stderr, as text or one JSON object a line, each record with its request id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
