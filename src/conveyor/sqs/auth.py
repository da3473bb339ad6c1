"""Who may call the SQS endpoint, and what each action needs: the API keys' model.

Without API keys (and only on loopback) the endpoint is open to this machine, but takes
only what a web page cannot forge (`conveyor.forgery`): a loopback or allowed Host, no
other site's Origin or fetch metadata, and bodies in the SQS content types only
(`application/x-amz-json-1.0`, or the query protocol's form encoding, which a form can
send: the Host and Origin rules are what stop those).

Once a key exists (or on a public address) every request must be signed with SigV4 by
an active key: the access key id is the key's id, the secret its token. Each action then
needs the key's grant on its queue, as on the native API: sending `send`; receiving,
deleting and changing visibility `receive`; creating, deleting, purging, configuring and
moving messages `manage`; reading a queue's URL, attributes or tags any grant on it.
`ListQueues` and `ListDeadLetterSourceQueues` list only queues the key has a grant on.
A request that names another queue reaches it too: a RedrivePolicy's dead-letter queue
and a move task's destination take `send` there (as on the native API), and a task
handle is its source queue's (`manage` there).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from starlette.requests import Request

from conveyor.broker.api_keys import ApiKeys
from conveyor.broker.broker import Broker
from conveyor.forgery import browser_refusal, media_type
from conveyor.keys import Action, ApiKey
from conveyor.sealing import Sealer
from conveyor.sqs.context import Context, queue_name_from_url
from conveyor.sqs.errors import ACCESS_DENIED, SqsError
from conveyor.sqs.move_tasks import handle_source
from conveyor.sqs.params import Params
from conveyor.sqs.sigv4 import INVALID_CLIENT_TOKEN_ID, SigV4Verifier, access_key_of

FORM_TYPE = "application/x-www-form-urlencoded"

# action -> (what it needs, where its queue is named). None: any grant on the queue.
_URL, _NAME, _SOURCE, _HANDLE, _NONE, _ALL = "url", "name", "source", "handle", "none", "all"
NEEDS: Mapping[str, tuple[Action | None, str]] = {
    "SendMessage": ("send", _URL),
    "SendMessageBatch": ("send", _URL),
    "ReceiveMessage": ("receive", _URL),
    "DeleteMessage": ("receive", _URL),
    "DeleteMessageBatch": ("receive", _URL),
    "ChangeMessageVisibility": ("receive", _URL),
    "ChangeMessageVisibilityBatch": ("receive", _URL),
    "CreateQueue": ("manage", _NAME),
    "DeleteQueue": ("manage", _URL),
    "PurgeQueue": ("manage", _URL),
    "SetQueueAttributes": ("manage", _URL),
    "TagQueue": ("manage", _URL),
    "UntagQueue": ("manage", _URL),
    "GetQueueUrl": (None, _NAME),
    "GetQueueAttributes": (None, _URL),
    "ListQueueTags": (None, _URL),
    "ListDeadLetterSourceQueues": (None, _URL),
    "ListQueues": (None, _NONE),
    "AddPermission": ("manage", _URL),
    "RemovePermission": ("manage", _URL),
    "StartMessageMoveTask": ("manage", _SOURCE),
    "ListMessageMoveTasks": ("manage", _SOURCE),
    "CancelMessageMoveTask": ("manage", _HANDLE),
}
# outputs listing queue URLs, filtered to what the key may see
_LISTS = {"ListQueues": "QueueUrls", "ListDeadLetterSourceQueues": "queueUrls"}


def _denied(key: ApiKey, action: str, what: Action | None, queue: str | None) -> SqsError:
    where = f" on queue {queue}" if queue else ""
    need = what or "any access"
    return SqsError(ACCESS_DENIED, f"The key {key.name} ({key.id}) may not call {action}: "
                    f"it needs {need}{where}.")


def authorize_action(key: ApiKey | None, action: str, ctx: Context, params: Params) -> None:
    """AccessDenied unless `key` (None: the open mode) may call `action` as asked."""
    if key is None:
        return  # the open mode
    # An action missing from the table needs `manage` on every queue: a new action stays
    # closed to narrower keys until it is given its row.
    what, where = NEEDS.get(action, ("manage", _ALL))
    queues: list[str | None] = [None]
    if where == _URL:
        queues = [ctx.queue_name(params)]
    elif where == _NAME:
        queues = [params.text("QueueName")]
    elif where == _SOURCE:
        queues = [ctx.name_from_arn(params.required("SourceArn"), "SourceArn")[1]]
    elif where == _HANDLE:
        if what is not None and not key.allows(what):  # no handle tells a key it has none
            raise _denied(key, action, what, None)
        queues = [handle_source(params.required("TaskHandle"))[1]]
    elif where == _ALL:
        if not key.allows_every("manage"):
            raise SqsError(ACCESS_DENIED, f"The key {key.name} ({key.id}) may not call "
                           f"{action}: it needs manage on every queue.")
        return
    for queue in queues:
        allowed = key.allows_any(queue) if what is None else key.allows(what, queue)
        if not allowed:
            raise _denied(key, action, what, queue)
    if action == "StartMessageMoveTask" and "DestinationArn" in params:
        destination = ctx.name_from_arn(params.required("DestinationArn"),
                                        "DestinationArn")[1]
        if not key.allows("send", destination):
            raise _denied(key, action, "send", destination)
    if action in ("CreateQueue", "SetQueueAttributes"):
        # The queue's messages move to its dead-letter queue by themselves later: naming
        # one is sending there.
        dead_letter_queue = _dead_letter_target(ctx, params)
        if dead_letter_queue is not None and not key.allows("send", dead_letter_queue):
            raise _denied(key, action, "send", dead_letter_queue)


def _dead_letter_target(ctx: Context, params: Params) -> str | None:
    """The queue a request's RedrivePolicy names as dead-letter queue, read as
    `queue_attributes.to_broker` reads it; None when there is none (a malformed policy is
    then refused by the action itself, before it changes anything)."""
    attributes = params.raw("Attributes")
    policy = attributes.get("RedrivePolicy") if isinstance(attributes, Mapping) else None
    if not isinstance(policy, str) or not policy:
        return None
    try:
        data = orjson.loads(policy)
    except orjson.JSONDecodeError:
        return None
    arn = data.get("deadLetterTargetArn") if isinstance(data, dict) else None
    found = ctx.parse_arn(arn) if isinstance(arn, str) else None
    return None if found is None else found[1]


def filter_output(key: ApiKey | None, action: str, output: dict[str, Any] | None
                  ) -> dict[str, Any] | None:
    """Drop the queues a key has no grant on from the listing actions' answers."""
    member = _LISTS.get(action)
    if key is None or member is None or not output or not output.get(member):
        return output
    urls = [u for u in output[member] if key.allows_any(queue_name_from_url(u))]
    return {**output, member: urls or None}


class SqsAuth:
    """The endpoint's door: open (loopback, no keys, nothing forged) or SigV4 with keys."""

    def __init__(self, broker: Broker, *, always: bool = False,
                 allowed_hosts: Sequence[str] = (), sealer: Sealer | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = ApiKeys(broker, sealer=sealer)
        self.always = always
        self.allowed_hosts = tuple(allowed_hosts)
        self.clock = clock  # what signatures are dated against

    async def authenticate(self, request: Request, body: bytes) -> ApiKey | None:
        """The key that signed the request, or None in the open mode; else SqsError."""
        if not self.always and not await self.keys.configured():
            self._refuse_forged(request)
            return None
        query = request.scope.get("query_string", b"").decode("latin-1")
        headers = request.headers.items()
        access_key = access_key_of(query, headers)
        found = await self.keys.signing_key(access_key)
        key, secret = found if found is not None else (None, None)
        if key is None or secret is None:
            raise SqsError(INVALID_CLIENT_TOKEN_ID, _unknown_key(
                key is not None, await self.keys.configured()))
        verifier = SigV4Verifier({key.id: secret}, clock=self.clock)
        verifier.verify(request.method, request.url.path, query, headers, body)
        return key

    def _refuse_forged(self, request: Request) -> None:
        headers = dict(request.headers.items())
        refused = browser_refusal(request.method, request.url.path, headers,
                                  check_host=True, allowed=self.allowed_hosts,
                                  navigable=False)
        if refused is not None:
            raise SqsError(ACCESS_DENIED, refused.message)
        content_type = headers.get("content-type")
        has_body = (headers.get("content-length", "0").strip() not in ("", "0")
                    or "transfer-encoding" in headers)
        if request.method == "POST" and (content_type is not None or has_body):
            kind = media_type(content_type)
            if kind != FORM_TYPE and not kind.startswith("application/x-amz-json-"):
                raise SqsError(ACCESS_DENIED, "The SQS endpoint takes "
                               "application/x-amz-json-1.0 or application/x-www-form-"
                               f"urlencoded bodies, not {(content_type or 'none')[:100]!r}.")


def _unknown_key(secretless: bool, configured: bool) -> str:
    if secretless:
        return ("This API key's secret cannot be used here: it was made before keys could "
                "sign SQS requests (make a new one), or sealed with a CONVEYOR_KEYS_SECRET "
                "this server does not have.")
    if not configured:
        return ("This endpoint listens on a public address and has no API keys; make one "
                "with `conveyor keys create`.")
    return "The security token included in the request is invalid."
