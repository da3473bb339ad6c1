"""AddPermission and RemovePermission: statements in the queue's stored `Policy`.

A permission is one `Allow` statement whose `Sid` is its label, granting `SQS:<action>`
on the queue's ARN to the accounts' root principals, as SQS writes it. The policy is kept
and returned (GetQueueAttributes `Policy`); it is not enforced: access to this endpoint is
decided by the server's credentials.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from conveyor.sqs.context import Context
from conveyor.sqs.params import Params
from conveyor.sqs.queue_attributes import MAX_POLICY_BYTES
from conveyor.sqs.texts import fail

Output = dict[str, Any] | None

_LABEL = re.compile(r"[A-Za-z0-9_-]{1,80}")
MAX_ACTIONS = 7
MAX_STATEMENTS = 20
# The actions a queue's owner may grant to other accounts ("*" is all of them).
GRANTABLE = frozenset({"*", "ChangeMessageVisibility", "DeleteMessage", "GetQueueAttributes",
                       "GetQueueUrl", "ListDeadLetterSourceQueues", "PurgeQueue",
                       "ReceiveMessage", "SendMessage", "ListQueueTags",
                       "ListMessageMoveTasks", "StartMessageMoveTask",
                       "CancelMessageMoveTask"})


def _policy(ctx: Context, text: str | None, name: str) -> dict[str, Any]:
    """The stored policy as a dict (a fresh one when there is none or it is not a dict)."""
    data = orjson.loads(text) if text else None
    if not isinstance(data, dict):
        data = {"Version": "2008-10-17", "Id": f"{ctx.queue_arn(name)}/SQSDefaultPolicy"}
    if not isinstance(data.get("Statement"), list):
        statement = data.get("Statement")
        data["Statement"] = [statement] if isinstance(statement, dict) else []
    return data


def _sids(policy: dict[str, Any]) -> list[Any]:
    return [s.get("Sid") for s in policy["Statement"] if isinstance(s, dict)]


async def add_permission(ctx: Context, p: Params) -> Output:
    """AddPermission: a new labelled statement; the label must be new."""
    queue = await ctx.broker.get_queue(ctx.queue_name(p), ctx.region)
    label = p.required("Label")
    accounts = p.strings("AWSAccountIds")
    actions = p.strings("Actions")
    if not _LABEL.fullmatch(label):
        raise fail("permission_label", label=label)
    if not actions:
        raise fail("missing_parameter", name="Actions")
    if not accounts:
        raise fail("permission_accounts")
    if len(actions) > MAX_ACTIONS:
        raise fail("permission_actions_over", count=len(actions))
    for action in actions:
        if action not in GRANTABLE:
            raise fail("permission_action", action=action)
    policy = _policy(ctx, queue.attributes.policy, queue.name)
    if label in _sids(policy):
        raise fail("permission_exists", label=label)
    if len(policy["Statement"]) >= MAX_STATEMENTS:
        raise fail("policy_statements", count=len(policy["Statement"]) + 1,
                   limit=MAX_STATEMENTS)
    principals = [f"arn:aws:iam::{account}:root" for account in accounts]
    granted = [f"SQS:{action}" for action in actions]
    policy["Statement"].append({
        "Sid": label, "Effect": "Allow",
        "Principal": {"AWS": principals[0] if len(principals) == 1 else principals},
        "Action": granted[0] if len(granted) == 1 else granted,
        "Resource": ctx.queue_arn(queue.name),
    })
    text = orjson.dumps(policy).decode()
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise fail("attribute_value", name="Policy")
    await ctx.broker.update_queue(queue.name, {"policy": text}, ctx.region)
    return None


async def remove_permission(ctx: Context, p: Params) -> Output:
    """RemovePermission: drop the statement of that label; the last one drops the policy."""
    queue = await ctx.broker.get_queue(ctx.queue_name(p), ctx.region)
    label = p.required("Label")
    policy = _policy(ctx, queue.attributes.policy, queue.name)
    kept = [s for s in policy["Statement"] if not (isinstance(s, dict) and s.get("Sid") == label)]
    if len(kept) == len(policy["Statement"]):
        raise fail("permission_missing", label=label)
    policy["Statement"] = kept
    text = orjson.dumps(policy).decode() if kept else None
    await ctx.broker.update_queue(queue.name, {"policy": text}, ctx.region)
    return None


HANDLERS: dict[str, Callable[[Context, Params], Awaitable[Output]]] = {
    "AddPermission": add_permission,
    "RemovePermission": remove_permission,
}
