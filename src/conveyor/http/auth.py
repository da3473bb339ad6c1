"""API-key authentication of the native API, the WebSocket stream and the dashboard, as
pure ASGI middleware.

A request carries its key as `Authorization: Bearer <token>` or `X-Api-Key: <token>`; a
WebSocket may also pass `?api_key=<token>` (browsers cannot set its headers); the dashboard
takes `?api_key=<token>` once and keeps it in an HttpOnly, SameSite=Strict cookie.

Which action a request needs is read from its method and path (`required`): sending is
`send`, receiving and acknowledging `receive`, everything that changes or inspects a
queue as a whole `manage`; the queue is the path's (or, on create, the body's `name`).
What is shared by every queue takes its action on every queue (a grant on `*`): creating a
flow `send`, rate limits and cron ticks `receive`, `/metrics` any action.
Where the path names no queue (jobs, flows, move tasks, workers) or the body names more
(a dead-letter queue, a redrive's destination), the route finds the queues the request
reaches and calls `permit`, whose `Forbidden` this middleware answers with the same 403.

Authentication is on when the server listens on a public address (`always`), or once any
key was made (revoked ones count); with neither (loopback, no keys: a developer's
machine) every request passes that a web page could not have forged (`conveyor.forgery`):
its Host must be a loopback name or an allowed host. In every mode an Origin must be this
server, another site's fetch metadata is refused, and JSON routes take only
`application/json` bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

import orjson
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.broker.api_keys import ApiKeys
from conveyor.broker.broker import Broker
from conveyor.errors import ConveyorError
from conveyor.forgery import Refusal, browser_refusal, is_loopback, json_body_refusal
from conveyor.http.errors import conveyor_error_response, error_response
from conveyor.keys import ACTIONS, Action, ApiKey

COOKIE = "conveyor_key"
QUERY = "api_key"
# Provider feedback webhooks verify the provider's own signature or secret instead.
PUBLIC = re.compile(r"/(healthz|readyz|openapi\.json|api-docs(/.*)?|ui/static/.*|"
                    r"v1/feedback/[a-z]+)")
_QUEUE = re.compile(r"/v1/queues/([^/]+)(/.*)?")
_DASHBOARD_QUEUE = re.compile(r"/ui/queues/([^/]+)(/.*)?")
_RECEIVE_PARTS = ("/messages/receive", "/messages/delete", "/messages/visibility",
                  "/messages/retry", "/stream")
_WORKER_PREFIXES = ("/v1/jobs", "/v1/workers")
# Rate limits and cron ticks are shared by every queue's workers (and the server's own
# pacing: `purge:`, `deleted:`, `notify:` keys); no request names a queue they belong to.
_SHARED_PREFIXES = ("/v1/limits/", "/v1/cron/")
_NOTIFY_PREFIXES = ("/v1/notifications", "/v1/suppressions")
# The job explorer's actions (http/explorer.py, http/job_cancel_routes.py).
_JOB_ACTIONS = ("/retry", "/delete", "/cancel")
_JSON_PREFIXES = ("/v1/", "/wq")  # routes whose bodies are JSON (the dashboard's are forms)

EVERY = "*"
"""`Need.queue` for every queue (no queue name has a `*`)."""

__all__ = ["EVERY", "ApiKeyAuth", "Forbidden", "Need", "allowed", "is_loopback", "key_of",
           "permit", "required", "scoped", "token_of"]


@dataclass(frozen=True, slots=True)
class Need:
    """What a request needs: an action (None: any valid key) on a queue (None: any).

    `name_in_body`: the queue is the body's `name` (creating a queue)."""

    action: Action | None = None
    queue: str | None = None
    name_in_body: bool = False


def required(method: str, path: str) -> Need | None:
    """The permission a request needs; None for public paths."""
    if PUBLIC.fullmatch(path):
        return None
    if match := _QUEUE.fullmatch(path):
        queue, rest = match.group(1), match.group(2) or ""
        if rest == "/messages":
            return Need("send" if method == "POST" else "manage", queue)
        if rest in _RECEIVE_PARTS:
            return Need("receive", queue)
        if rest == "" and method in ("GET", "HEAD"):
            return Need(None, queue)
        return Need("manage", queue)
    if path in ("/v1/queues", "/v1/queues/"):
        return Need("manage", name_in_body=True) if method == "POST" else Need()
    if path.startswith("/v1/tasks"):
        return Need("manage")
    if path.startswith("/v1/flows"):
        # A flow sends jobs to whatever queues its steps name (known only from the body):
        # creating one takes a key that may send to every queue; workers (receive) record
        # ends and read trees.
        if method == "POST" and path.rstrip("/") == "/v1/flows":
            return Need("send", EVERY)
        return Need("receive")
    if path.startswith("/v1/jobs") and (method == "DELETE" or (
            method == "POST" and path.endswith(_JOB_ACTIONS))):
        return Need("manage")  # moves or deletes messages, as a redrive or a purge does
    if path.startswith(_SHARED_PREFIXES):
        # A key of some queues could hold back another queue's tasks (a penalty, every
        # token, every slot) or win another team's cron tick: `receive` on every queue.
        return Need("receive", EVERY)
    if path.startswith(_WORKER_PREFIXES):
        return Need("receive")
    if path == "/metrics":
        # Every queue's depths, jobs and workers: for a key of every queue (any action).
        return Need(None, EVERY)
    if path == "/wq" or path.startswith("/wq/"):
        return Need("send" if method == "POST" else "receive", "wq")
    if match := _DASHBOARD_QUEUE.fullmatch(path):
        return Need("manage", match.group(1))
    if path in ("/ui/queues", "/ui/queues/") and method == "POST":
        return Need("manage", name_in_body=True)
    if path == "/ui/deliveries" or path.startswith("/ui/deliveries/"):
        # The delivery view shows what GET /v1/notifications does (people's addresses):
        # the same permission, on the notification queues only.
        return Need("receive", "notify-*")
    if path == "/" or path.startswith("/ui"):
        return Need("manage")
    if path.startswith("/v1/recipients/"):
        # Notifying fans out to the notify-<channel> queues: a key that may send there.
        if path.endswith("/notify"):
            return Need("send", "notify-*")
        # People's addresses are personal data: a key of the notification queues only.
        return Need("receive" if method in ("GET", "HEAD") else "manage", "notify-*")
    if path == "/v1/templates" or path.startswith("/v1/templates/"):
        # A preview reads a recipient's locale and addresses (personal data) and changes
        # nothing: as a read.
        if method in ("GET", "HEAD") or path.endswith("/preview"):
            return Need("receive", "notify-*")
        return Need("manage", "notify-*")
    if path.startswith(_NOTIFY_PREFIXES):
        # Deliveries and suppressions: read by a key that may receive notifications;
        # suppressing or re-enabling an address is managing them.
        return Need("receive" if method in ("GET", "HEAD") else "manage", "notify-*")
    return Need()


class Forbidden(Exception):
    """A request reaches a queue beyond its key's grants (raised by `permit`; `ApiKeyAuth`
    answers it 403 `forbidden`, as its own refusals)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def key_of(request: HTTPConnection) -> ApiKey | None:
    """The request's API key (put there by `ApiKeyAuth`); None in the open mode."""
    key = getattr(request.state, "api_key", None)
    return key if isinstance(key, ApiKey) else None


def scoped(request: HTTPConnection, action: Action) -> ApiKey | None:
    """The request's key when it may `action` on some queues only, so that a route must
    find and check the queues a request reaches; None when every queue passes (no keys,
    or a grant on `*`)."""
    key = key_of(request)
    return None if key is None or key.allows_every(action) else key


def allowed(request: HTTPConnection, action: Action, *queues: str | None) -> bool:
    """True when the request's key may `action` on each of `queues` (None: on every
    queue, for a listing or bulk action that names none); always without keys."""
    key = scoped(request, action)
    return key is None or all(q is not None and key.allows(action, q) for q in queues)


def permit(request: HTTPConnection, action: Action, *queues: str | None) -> None:
    """Forbidden unless the request's key may `action` on each of `queues` (None: on
    every queue); the one check of the queues a route finds."""
    key = scoped(request, action)
    if key is None:
        return
    for queue in queues:
        if queue is None or not key.allows(action, queue):
            raise Forbidden(_refusal(key, action, EVERY if queue is None else queue))


def _refusal(key: ApiKey, action: Action | None, queue: str | None) -> str:
    """The 403's sentence: `queue` None is some queue, EVERY every queue."""
    where = (f" on queue {queue!r}" if action else f" queue {queue!r}") if queue else ""
    if queue == EVERY:
        where = " on every queue" if action else " every queue"
    return f"The key {key.name!r} may not {action or 'access'}{where}."


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers", [])}


def token_of(scope: Scope) -> str | None:
    """The key a request presents, wherever it is."""
    headers = _headers(scope)
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    if b"x-api-key" in headers:
        return headers[b"x-api-key"].decode("latin-1").strip() or None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if QUERY in query:
        return str(query[QUERY][-1])
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # a malformed Cookie header is no key
        return None
    return str(cookie[COOKIE].value) if COOKIE in cookie else None


class ApiKeyAuth:
    """Refuse forged requests (403/415) and requests without a key that allows them
    (401 no key, 403 not allowed)."""

    def __init__(self, app: ASGIApp, broker: Broker, always: bool = False,
                 allowed_hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.keys = ApiKeys(broker)
        self.always = always
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        need = required(scope.get("method", "GET"), scope["path"])
        if need is None:
            await self.app(scope, receive, send)
            return
        try:
            open_mode = not self.always and not await self.keys.configured()
        except ConveyorError as exc:
            await self._answer(scope, receive, send, conveyor_error_response(exc))
            return
        if refused := self._forged(scope, open_mode):
            await self._answer(scope, receive, send, error_response(
                refused.status, refused.code, refused.message))
            return
        if open_mode:
            await self.app(scope, receive, send)
            return
        try:
            token = token_of(scope)
            key = await self.keys.authenticate(token) if token else None
        except ConveyorError as exc:
            await self._answer(scope, receive, send, conveyor_error_response(exc))
            return
        if key is None:
            await self._refuse(scope, receive, send, 401, "unauthorized",
                               "An API key is required (Authorization: Bearer <key>)."
                               if token is None else "The API key is unknown or revoked.")
            return
        if need.name_in_body:
            receive, name = await _body_name(receive)
            need = Need(need.action, name)
        if not _allowed(key, need):
            await self._refuse(scope, receive, send, 403, "forbidden",
                               _refusal(key, need.action, need.queue))
            return
        scope.setdefault("state", {})["api_key"] = key
        if _is_dashboard_login(scope):
            if _headers(scope).get(b"sec-fetch-site", b"none") not in (b"none",
                                                                       b"same-origin"):
                # Another site's link must not log the browser in with its key.
                await self._refuse(scope, receive, send, 403, "cross_site_request",
                                   "Open the login link from the address bar, not from "
                                   "another site's page.")
                return
            await _login(scope, send, token or "")
            return
        try:
            await self.app(scope, receive, send)
        except Forbidden as exc:  # routes call `permit` before they answer
            await self._refuse(scope, receive, send, 403, "forbidden", exc.message)

    def _forged(self, scope: Scope, open_mode: bool) -> Refusal | None:
        """What a web page could have sent: the Host/Origin/fetch-metadata rules (Host
        only without keys), then the JSON content type on JSON routes."""
        headers = {k.decode("latin-1"): v.decode("latin-1")
                   for k, v in _headers(scope).items()}
        method: str = scope.get("method", "GET")
        path: str = scope["path"]
        refused = browser_refusal(method, path, headers, check_host=open_mode,
                                  allowed=self.allowed_hosts)
        if refused is None and scope["type"] == "http" and path.startswith(_JSON_PREFIXES):
            refused = json_body_refusal(method, headers)
        return refused

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int,
                      code: str, message: str) -> None:
        headers = {"www-authenticate": 'Bearer realm="conveyor"'} if status == 401 else None
        await self._answer(scope, receive, send,
                           error_response(status, code, message, headers=headers))

    @staticmethod
    async def _answer(scope: Scope, receive: Receive, send: Send, response: Any) -> None:
        if scope["type"] == "websocket":
            if "websocket.http.response" in scope.get("extensions", {}):
                # The refusal as an HTTP answer to the handshake, with its JSON body.
                await send({"type": "websocket.http.response.start",
                            "status": response.status_code,
                            "headers": response.raw_headers})
                await send({"type": "websocket.http.response.body", "body": response.body})
                return
            code = 4401 if response.status_code == 401 else 4403
            await send({"type": "websocket.close", "code": code})
            return
        await response(scope, receive, send)


def _allowed(key: ApiKey, need: Need) -> bool:
    if need.queue == EVERY:
        return any(key.allows_every(a) for a in ([need.action] if need.action else ACTIONS))
    if need.queue is not None and need.queue.endswith("*"):
        # `notify-*`: every notification queue, so a grant that covers them all (as
        # `notify-*`, `notify*` or `*` do), not one that fnmatch lets match the string
        # "notify-*" (`notify-?` would: its `?` takes the `*`).
        prefix = need.queue.rstrip("*")
        return any(key.allows_prefix(a, prefix)
                   for a in ([need.action] if need.action else ACTIONS))
    if need.action is None:
        return key.allows_any(need.queue)
    return key.allows(need.action, need.queue)


async def _body_name(receive: Receive) -> tuple[Receive, str | None]:
    """Read the whole body (the size limit applies outside), find its `name` (JSON or a
    form), and give back a `receive` that replays it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    name: Any = None
    try:
        value = orjson.loads(body)
        name = value.get("name") if isinstance(value, dict) else None
    except orjson.JSONDecodeError:
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        name = form.get("name")
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay, name if isinstance(name, str) else ""


def _is_dashboard_login(scope: Scope) -> bool:
    path: str = scope["path"]
    return (scope["type"] == "http" and scope.get("method") == "GET"
            and (path == "/" or path.startswith("/ui/"))
            and QUERY in parse_qs(scope.get("query_string", b"").decode("latin-1")))


async def _login(scope: Scope, send: Send, token: str) -> None:
    """Keep the dashboard's key in a cookie and drop it from the address bar."""
    query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
             if k != QUERY]
    location = scope["path"] + (f"?{urlencode(query)}" if query else "")
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
    await send({"type": "http.response.start", "status": 303, "headers": [
        (b"location", location.encode("latin-1", "replace")),
        (b"set-cookie", cookie.encode("latin-1")), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})

