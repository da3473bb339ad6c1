"""The SQS-compatible endpoint as an ASGI app: route, parse, dispatch, render.

Requests are posted to `/` or to a queue URL's path `/{account}/{queue}` (the Java SDK v1
drops `QueueUrl` and posts there). The protocol is AWS JSON 1.0 when the content type is
`application/x-amz-json-*`, else query. The region is the SigV4 credential scope's.
Who may call what is `conveyor.sqs.auth`'s: the API keys, checked by SigV4.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.broker.broker import Broker
from conveyor.config import MAX_REQUEST_BYTES
from conveyor.digits import integer
from conveyor.errors import ConveyorError
from conveyor.forgery import normalise_hosts
from conveyor.hangups import hangup
from conveyor.sealing import sealer_from
from conveyor.sqs import message_actions, move_tasks, queue_actions
from conveyor.sqs.auth import SqsAuth, authorize_action, filter_output
from conveyor.sqs.context import Context, credential_scope
from conveyor.sqs.errors import INTERNAL_ERROR, AwsError, SqsError
from conveyor.sqs.params import Params
from conveyor.sqs.state import Cooldowns, EndpointState
from conveyor.sqs.texts import fail, from_domain
from conveyor.sqs.wire import (
    Protocol,
    WireRequest,
    WireResponse,
    is_json,
    parse_json,
    parse_query,
    render_error,
    render_json,
    render_xml,
)

log = logging.getLogger("conveyor.sqs")

Handler = Callable[[Context, Params], Awaitable[dict[str, Any] | None]]

HANDLERS: dict[str, Handler] = {
    **queue_actions.HANDLERS,
    **message_actions.HANDLERS,
    **move_tasks.HANDLERS,
}

DEFAULT_ACCOUNT_ID = "000000000000"


async def _parse(request: Request) -> WireRequest:
    body = await request.body()
    if is_json(request.headers.get("content-type", "")):
        return parse_json(request.headers.get("x-amz-target", ""), body)
    items = list(request.query_params.multi_items())
    if body:
        # Bytes that are not UTF-8, raw or %-encoded, stay lone surrogates (which the
        # character checks refuse) rather than becoming U+FFFD unnoticed.
        items += parse_qsl(body.decode("utf-8", "surrogateescape"), keep_blank_values=True,
                           errors="surrogateescape")
    return parse_query(items)


REQUEST_TOO_LARGE = AwsError("RequestEntityTooLarge", "RequestEntityTooLarge", 413)


async def _read_body(request: Request, limit: int) -> None:
    """Read the body (kept for `request.body()`), refusing it once it passes `limit`."""
    declared = request.headers.get("content-length", "")
    too_large = SqsError(REQUEST_TOO_LARGE, f"The request body is larger than {limit} bytes.")
    declared_size = integer(declared)
    if declared_size is not None and declared_size > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    request._body = b"".join(chunks)  # what request.body() returns from now on


class SqsEndpoint:
    """Answers SQS requests from one broker."""

    def __init__(self, broker: Broker, account_id: str, auth: SqsAuth,
                 max_request_bytes: int = MAX_REQUEST_BYTES, relaxed: bool = False) -> None:
        self.broker = broker
        self.account_id = account_id
        self.auth = auth
        self.max_request_bytes = max_request_bytes
        self.state = EndpointState(Cooldowns(relaxed))

    def context(self, request: Request) -> Context:
        """The broker, region, account and base URL for one request."""
        _, region = credential_scope(request.headers.get("authorization", ""),
                                     request.query_params.get("X-Amz-Credential"))
        host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
        return Context(self.broker, region, self.account_id, f"{request.url.scheme}://{host}",
                       request.path_params.get("queue"), self.state)

    async def handle(self, request: Request) -> Response:
        """Answer one request (never raises: errors are rendered in its protocol)."""
        request_id = str(uuid.uuid4())
        if request.method == "HEAD":  # Starlette routes a GET's HEAD here: it would act
            return Response(status_code=405, headers={"Allow": "GET, POST"})
        protocol: Protocol = "json" if is_json(request.headers.get("content-type", "")) \
            else "query"
        try:
            await _read_body(request, self.max_request_bytes)
            key = await self.auth.authenticate(request, await request.body())
            wire = await _parse(request)
            handler = HANDLERS.get(wire.action)
            if handler is None:
                raise fail("invalid_action", action=wire.action[:100])
            context, params = self.context(request), Params(wire.members)
            authorize_action(key, wire.action, context, params)
            # ReceiveMessage is the one action that may wait (a long poll)
            watch = hangup(request.receive) if wire.action == "ReceiveMessage" \
                else contextlib.nullcontext(None)
            async with watch as gone:
                output = await handler(dataclasses.replace(context, gone=gone), params)
            output = filter_output(key, wire.action, output)
            answer = (render_json(output or {}, request_id) if protocol == "json"
                      else render_xml(wire.action, output, request_id))
        except SqsError as exc:
            answer = render_error(protocol, exc, request_id)
        except ConveyorError as exc:
            answer = render_error(protocol, from_domain(exc), request_id)
        except Exception:  # an unexpected failure still gets an AWS-shaped answer
            log.exception("SQS request %s failed", request_id)
            answer = render_error(protocol, SqsError(
                INTERNAL_ERROR, "We encountered an internal error. Please try again."),
                request_id)
        return _response(answer)


def _response(answer: WireResponse) -> Response:
    return Response(answer.body, answer.status, headers=answer.headers)


def create_sqs_app(broker: Broker, *, account_id: str = DEFAULT_ACCOUNT_ID,
                   require_keys: bool = False, allowed_hosts: Sequence[str] = (),
                   keys_secret: str | None = None,
                   max_request_bytes: int = MAX_REQUEST_BYTES,
                   relaxed: bool = False) -> Starlette:
    """The SQS-compatible ASGI app over `broker` (which the caller starts and closes).

    Requests are signed with API keys once any exists, or always with `require_keys` (a
    public address); else only this machine's requests that no web page could forge pass,
    with `allowed_hosts` beyond loopback names (`conveyor.sqs.auth`). `keys_secret` opens
    sealed key secrets (`conveyor.sealing`). Bodies over `max_request_bytes` are refused
    (413) before they are read whole. `relaxed` lifts AWS's 60-second PurgeQueueInProgress
    and QueueDeletedRecently waits."""
    auth = SqsAuth(broker, always=require_keys, allowed_hosts=normalise_hosts(allowed_hosts),
                   sealer=sealer_from(keys_secret))
    endpoint = SqsEndpoint(broker, account_id, auth, max_request_bytes, relaxed)
    methods = ["GET", "POST"]
    return Starlette(routes=[
        Route("/", endpoint.handle, methods=methods),
        Route("/{account}/{queue}", endpoint.handle, methods=methods),
    ])
