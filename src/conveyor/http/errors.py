"""Errors on the wire: one table from `conveyor.errors` to status codes, one JSON shape.

Every error response is `{"error": {"code", "message"}}`, plus `"index"` (the bad entry of a
batch) and `"field"` when known. Framework errors (malformed JSON, pydantic validation,
unknown routes) are mapped into the same shape here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, compile_path

from conveyor import errors as e
from conveyor.http.head import head_allowed, method_of
from conveyor.http.parse import MalformedJson

log = logging.getLogger("conveyor.http")

STATUS: Mapping[type[e.ConveyorError], int] = {
    MalformedJson: 400,
    e.InvalidDigest: 400,
    e.InvalidInput: 422,
    e.InvalidFlow: 400,  # a cycle, an unknown task: the flow as sent cannot run
    e.Unsupported: 422,  # the request is well formed; this server/backend cannot do it
    e.QueueNotFound: 404,
    e.TaskNotFound: 404,
    e.JobNotFound: 404,
    e.FlowNotFound: 404,
    e.RecipientNotFound: 404,
    e.TemplateNotFound: 404,
    e.QueueAlreadyExists: 409,
    e.Conflict: 409,
    e.OverLimit: 429,
    e.StorageUnavailable: 503,
    e.StorageError: 500,
    e.ConveyorError: 500,
}
"""Status code of each error class; a class not listed takes its nearest listed base's."""

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "request_too_large", 415: "unsupported_media_type"}
_DASHBOARD = re.compile(r"/(ui(/.*)?)?")


def status_of(exc: e.ConveyorError) -> int:
    """The status code for a domain error (walks the class's bases)."""
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_body(code: str, message: str, *, field: str | None = None,
               index: int | None = None) -> dict[str, Any]:
    """The one error shape."""
    error: dict[str, Any] = {"code": code, "message": message}
    if index is not None:
        error["index"] = index
    if field is not None:
        error["field"] = field
    return {"error": error}


def error_response(status: int, code: str, message: str, *, field: str | None = None,
                   index: int | None = None, headers: Mapping[str, str] | None = None
                   ) -> Response:
    """A JSON error response."""
    return Response(orjson.dumps(error_body(code, message, field=field, index=index)),
                    status_code=status, media_type="application/json", headers=headers)


def conveyor_error_response(exc: e.ConveyorError) -> Response:
    """The response for a domain error."""
    status = status_of(exc)
    if status >= 500:
        log.error("%s: %s", exc.code, exc.message)
    return error_response(status, exc.code, exc.message, field=getattr(exc, "field", None),
                          index=getattr(exc, "index", None))


def validation_error_response(errors: Sequence[Any]) -> Response:
    """Pydantic/FastAPI request errors: malformed JSON is 400, anything else 422."""
    first: Mapping[str, Any] = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "invalid JSON")
        return error_response(400, "malformed_json", f"The request body is not valid JSON: "
                                                     f"{detail}.")
    loc = list(first.get("loc", ()))
    if loc == ["body"] and first.get("type") == "missing":
        # The whole body, not a field in it: pydantic's "Field required." named nothing.
        return error_response(422, "missing_parameter", "A JSON body is required.",
                              field="body")
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]  # where in the request, not which field
    index = next((part for part in loc if isinstance(part, int)), None)
    names = [str(part) for part in loc if not isinstance(part, int)]
    field = names[-1] if names else None
    where = ".".join(str(part) for part in loc)
    message = str(first.get("msg", "Invalid request."))
    if first.get("type") == "missing" and field is not None:
        return error_response(422, "missing_parameter", f"{where} is required.",
                              field=field, index=index)
    text = f"{where}: {message}." if where else f"{message}."
    return error_response(422, "invalid_input", text.replace("..", "."),
                          field=field, index=index)


async def _conveyor_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.ConveyorError)
    return conveyor_error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return validation_error_response(exc.errors())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error."
    headers = exc.headers
    method = method_of(request)  # HEAD, where routes saw a GET (`conveyor.http.head`)
    if exc.status_code == 404:
        message = f"No route for {method} {request.url.path}."
        if is_dashboard_path(request.url.path):
            from conveyor.http.dashboard import refused_page  # (see the 405 below)

            # A page, as the dashboard's missing queue or job is: not the API's JSON.
            return refused_page(f"No dashboard page at {request.url.path}.", 404, headers,
                                title="Not found")
    elif exc.status_code == 405:
        # Starlette's Allow names only the first route whose path matched (PUT for
        # /v1/jobs/counts, from /v1/jobs/{job_id}); name every route's methods.
        allowed = _allowed_methods(request)
        if allowed:
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            message = (f"{method} is not allowed on {request.url.path}; "
                       f"it takes {', '.join(allowed)}.")
        if is_dashboard_path(request.url.path):
            # Imported here: the dashboard imports this module (through `http.auth`).
            from conveyor.http.dashboard import refused_page

            # A page, as the dashboard's other refusals and its not-found pages are.
            return refused_page(message, 405, headers)
    return error_response(exc.status_code, code, message, headers=headers)


def is_dashboard_path(path: str) -> bool:
    """Whether `path` is the dashboard's (`/`, `/ui/...`), whose errors are pages."""
    return _DASHBOARD.fullmatch(path) is not None


def _allowed_methods(request: Request) -> list[str]:
    path = request.url.path
    methods: set[str] = set()
    if not is_dashboard_path(path):
        # From the OpenAPI paths: the routes a client can know of (FastAPI nests the rest).
        for template, operations in request.app.openapi().get("paths", {}).items():
            if compile_path(template)[0].fullmatch(path):
                methods.update(m.upper() for m in operations if m != "parameters")
    if not methods:
        # Routes left out of the OpenAPI document (the dashboard's, `/api-docs`,
        # `/openapi.json`): ask the router. Starlette's own Allow there said GET alone.
        matched = [r for r in _routes(request.app.routes)
                   if r.methods and r.path_regex.fullmatch(path)]
        # A path a fixed route names (/ui/jobs/retry) is that route's, not a page's
        # parameter (/ui/jobs/{job_id}) that happens to match it too.
        fixed = [r for r in matched if not r.param_convertors]
        for route in fixed or matched:
            methods.update(route.methods or ())
    if "GET" in methods and head_allowed(path):
        methods.add("HEAD")  # GET routes take HEAD (`conveyor.http.head`)
    return sorted(methods)


def _routes(routes: Iterable[BaseRoute]) -> Iterator[Route]:
    """Every route, inside included routers too: FastAPI 0.16x keeps each included router
    whole (its `original_router`; conveyor includes them without a prefix), older ones
    copied the routes into the app's list."""
    for route in routes:
        if isinstance(route, Route):
            yield route
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _routes(nested.routes)


async def _client_disconnect(request: Request, exc: Exception) -> Response:
    # A client that hangs up before its body arrived (a timeout, a kill) is no server fault:
    # one info line, not an ERROR with a traceback. Nobody reads this answer.
    log.info("client went away before its request was read: %s %s", request.method,
             request.url.path)
    return error_response(400, "client_disconnected",
                          "The client closed the connection before its request was read.")


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "The server failed to handle the request.")


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""
    app.add_exception_handler(e.ConveyorError, _conveyor_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(Exception, _unexpected_error)
