"""Queue actions: create, find, list, configure, tag, purge and delete queues.

Each handler takes the request's Context and Params and returns the output members
(None for actions without output); rendering is the wire module's job.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from conveyor.broker import queue_rules
from conveyor.broker.validation import FIFO_QUEUE_NAME as FIFO_NAME
from conveyor.broker.validation import QUEUE_NAME
from conveyor.errors import QueueAlreadyExists, QueueNotFound
from conveyor.models import Queue
from conveyor.sqs import permissions
from conveyor.sqs import queue_attributes as qa
from conveyor.sqs.context import Context
from conveyor.sqs.errors import invalid, missing
from conveyor.sqs.params import Params
from conveyor.sqs.texts import fail

Output = dict[str, Any] | None

MAX_TAGS = 50


def _token(after: str | None) -> str | None:
    return base64.urlsafe_b64encode(after.encode()).decode() if after else None


def _after(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid("Invalid NextToken value.") from None


async def _check_dead_letter_queue(ctx: Context, name: str, fifo: bool,
                                   given: dict[str, Any], value: str) -> None:
    """The dead-letter target exists, is of the same kind and lets this queue use it."""
    dlq_name = given.get("dead_letter_queue")
    if not dlq_name:
        return
    try:
        dlq = await ctx.broker.get_queue(dlq_name, ctx.region)
    except QueueNotFound:
        raise fail("dead_letter_target", value=value) from None
    if dlq.attributes.fifo != fifo:
        raise fail("redrive_policy", value=value, reason="Dead-letter target must be of the "
                   "same type (FIFO or standard) as the source queue.")
    if not qa.redrive_allowed(dlq, ctx.queue_arn(name)):
        raise fail("redrive_policy", value=value, reason=f"Queue {ctx.queue_arn(name)} is "
                   f"not allowed by the RedriveAllowPolicy of {ctx.queue_arn(dlq_name)}.")


def _check_name(name: str, given: dict[str, str]) -> bool:
    """Whether CreateQueue makes a FIFO queue; AWS's errors for names that cannot be."""
    fifo_given = given.get("FifoQueue")
    fifo = isinstance(fifo_given, str) and fifo_given.lower() == "true"
    if fifo:
        if not FIFO_NAME.fullmatch(name):
            raise fail("fifo_queue_name")
    elif not QUEUE_NAME.fullmatch(name):
        raise fail("queue_name")
    return fifo


def _tags(p: Params, member: str) -> dict[str, str]:
    tags = p.string_map(member)
    for key, value in tags.items():
        if not 1 <= len(key) <= 128:
            raise fail("tag_keys")
        if len(value) > 256:
            raise fail("tag_values")
    return tags


async def create_queue(ctx: Context, p: Params) -> Output:
    """CreateQueue: an existing queue with the same attributes answers with its URL."""
    name = p.required("QueueName")
    given = p.string_map("Attributes")
    fifo = _check_name(name, given)
    attrs = qa.to_broker(ctx, given, fifo)
    tags = _tags(p, "tags") or _tags(p, "Tags")
    if len(tags) > MAX_TAGS:
        raise fail("too_many_tags", name=name)
    try:
        existing = await ctx.broker.get_queue(name, ctx.region)
    except QueueNotFound:
        existing = None
    if existing is not None:
        differs = qa.differing(ctx, existing, given)
        if differs is not None:
            raise fail("queue_exists", name=differs)
        return {"QueueUrl": ctx.queue_url(existing.name)}
    if await ctx.state.cooldowns.deleted_recently(ctx.broker, ctx.region, name):
        raise fail("queue_deleted_recently")
    await _check_dead_letter_queue(ctx, name, fifo, attrs, given.get("RedrivePolicy", ""))
    if fifo:
        attrs["fifo"] = True
    if tags:
        attrs["tags"] = tags
    try:
        queue, _ = await ctx.broker.create_queue(name, attrs, region=ctx.region)
    except QueueAlreadyExists:  # created by another request meanwhile, differently
        raise fail("queue_exists", name=next(iter(given), "QueueName")) from None
    return {"QueueUrl": ctx.queue_url(queue.name)}


async def get_queue_url(ctx: Context, p: Params) -> Output:
    """GetQueueUrl (of this endpoint's one account: another owner's queue does not exist)."""
    name = p.required("QueueName")
    owner = p.text("QueueOwnerAWSAccountId")
    if owner is not None and owner != ctx.account_id:
        raise fail("queue_missing")
    queue = await ctx.broker.get_queue(name, ctx.region)
    return {"QueueUrl": ctx.queue_url(queue.name)}


async def list_queues(ctx: Context, p: Params) -> Output:
    """ListQueues: by prefix; paged with NextToken when MaxResults is given."""
    prefix = p.text("QueueNamePrefix") or ""
    limit = p.integer("MaxResults", 1, 1000, "max_results")
    after = _after(p.text("NextToken"))
    queues = await ctx.broker.list_queues(prefix, after, min((limit or 1000) + 1, 1000),
                                          region=ctx.region)
    more = limit is not None and len(queues) > limit
    queues = queues[:limit or 1000]
    return {"QueueUrls": [ctx.queue_url(q.name) for q in queues] or None,
            "NextToken": _token(queues[-1].name) if more else None}


async def delete_queue(ctx: Context, p: Params) -> Output:
    """DeleteQueue: the name cannot be used again for 60 seconds (unless relaxed)."""
    name = ctx.queue_name(p)
    await ctx.broker.delete_queue(name, ctx.region)
    await ctx.state.cooldowns.deleted(ctx.broker, ctx.region, name)
    return None


async def purge_queue(ctx: Context, p: Params) -> Output:
    """PurgeQueue: once per queue every 60 seconds (unless relaxed)."""
    queue = await ctx.broker.get_queue(ctx.queue_name(p), ctx.region)
    if not await ctx.state.cooldowns.may_purge(ctx.broker, ctx.region, queue.name):
        raise fail("purge_in_progress", name=queue.name)
    await ctx.broker.purge_queue(queue.name, ctx.region)
    return None


async def get_queue_attributes(ctx: Context, p: Params) -> Output:
    """GetQueueAttributes: the names asked for (none asked: none answered)."""
    names = qa.requested(p.strings("AttributeNames"))
    queue = await ctx.broker.get_queue(ctx.queue_name(p), ctx.region)
    stats = (await ctx.broker.queue_stats(queue.name, ctx.region)
             if qa.needs_stats(names) else None)
    # Names asked but none applying answer {} (as SQS does); none asked, no Attributes.
    return {"Attributes": qa.from_queue(ctx, queue, names, stats) if names else None}


async def set_queue_attributes(ctx: Context, p: Params) -> Output:
    """SetQueueAttributes."""
    queue = await ctx.broker.get_queue(ctx.queue_name(p), ctx.region)
    if "Attributes" not in p:
        raise missing("Attributes")
    given = p.string_map("Attributes")
    attrs = qa.to_broker(ctx, given, queue.attributes.fifo, queue)
    await _check_dead_letter_queue(ctx, queue.name, queue.attributes.fifo, attrs,
                                   given.get("RedrivePolicy", ""))
    if attrs:
        await ctx.broker.update_queue(queue.name, attrs, ctx.region)
    return None


async def tag_queue(ctx: Context, p: Params) -> Output:
    """TagQueue: add or overwrite tags."""
    name = ctx.queue_name(p)
    queue = await ctx.broker.get_queue(name, ctx.region)
    tags = _tags(p, "Tags")
    if not tags:
        raise missing("Tags")
    merged = {**queue.attributes.tags, **tags}
    if len(merged) > MAX_TAGS:
        raise fail("too_many_tags", name=queue.name)
    await ctx.broker.update_queue(name, {"tags": merged}, ctx.region)
    return None


async def untag_queue(ctx: Context, p: Params) -> Output:
    """UntagQueue: remove tags by key (missing keys are ignored)."""
    name = ctx.queue_name(p)
    queue = await ctx.broker.get_queue(name, ctx.region)
    keys = set(p.strings("TagKeys"))
    if not keys or not all(1 <= len(k) <= 128 for k in keys):
        raise fail("tag_keys")
    kept = {k: v for k, v in queue.attributes.tags.items() if k not in keys}
    if kept != queue.attributes.tags:
        await ctx.broker.update_queue(name, {"tags": kept}, ctx.region)
    return None


async def list_queue_tags(ctx: Context, p: Params) -> Output:
    """ListQueueTags."""
    queue = await ctx.broker.get_queue(ctx.queue_name(p), ctx.region)
    return {"Tags": dict(queue.attributes.tags)}  # {} when there are none, as SQS answers


async def dead_letter_sources(ctx: Context, name: str) -> list[Queue]:
    """Queues of the region whose dead-letter queue is `name`, by name."""
    return await queue_rules.dead_letter_sources(ctx.broker, name, ctx.region)


async def list_dead_letter_source_queues(ctx: Context, p: Params) -> Output:
    """ListDeadLetterSourceQueues, paged like ListQueues."""
    queue = await ctx.broker.get_queue(ctx.queue_name(p), ctx.region)
    limit = p.integer("MaxResults", 1, 1000, "max_results")
    after = _after(p.text("NextToken"))
    sources = [q for q in await dead_letter_sources(ctx, queue.name)
               if after is None or q.name > after]
    page = sources[:limit or 1000]
    more = limit is not None and len(sources) > limit
    return {"queueUrls": [ctx.queue_url(q.name) for q in page],
            "NextToken": _token(page[-1].name) if more else None}


HANDLERS = {
    "CreateQueue": create_queue,
    "GetQueueUrl": get_queue_url,
    "ListQueues": list_queues,
    "DeleteQueue": delete_queue,
    "PurgeQueue": purge_queue,
    "GetQueueAttributes": get_queue_attributes,
    "SetQueueAttributes": set_queue_attributes,
    "TagQueue": tag_queue,
    "UntagQueue": untag_queue,
    "ListQueueTags": list_queue_tags,
    "ListDeadLetterSourceQueues": list_dead_letter_source_queues,
    **permissions.HANDLERS,
}
