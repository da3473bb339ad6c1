"""Queue actions: create, find, list, configure, tag, purge and delete queues.

Each handler takes the request's Context and Params and returns the output members
(None for actions without output); rendering is the wire module's job.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from conveyor.errors import QueueNotFound
from conveyor.models import Queue
from conveyor.sqs import attributes as qa
from conveyor.sqs.context import Context
from conveyor.sqs.errors import (
    INVALID_ATTRIBUTE_NAME,
    INVALID_ATTRIBUTE_VALUE,
    UNSUPPORTED_OPERATION,
    SqsError,
    invalid,
)
from conveyor.sqs.params import Params

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


async def _check_allowed_by_dead_letter_queue(ctx: Context, name: str,
                                              given: dict[str, Any]) -> None:
    dlq_name = given.get("dead_letter_queue")
    if not dlq_name:
        return
    try:
        dlq = await ctx.broker.get_queue(dlq_name, ctx.region)
    except QueueNotFound:
        raise SqsError(INVALID_ATTRIBUTE_VALUE, "Value for parameter RedrivePolicy is "
                       "invalid. Reason: Dead letter target does not exist.") from None
    if not qa.redrive_allowed(dlq, ctx.queue_arn(name)):
        raise invalid(f"Value for parameter RedrivePolicy is invalid. Reason: Queue "
                      f"{ctx.queue_arn(name)} is not allowed by the RedriveAllowPolicy of "
                      f"{ctx.queue_arn(dlq_name)}.")


async def create_queue(ctx: Context, p: Params) -> Output:
    """CreateQueue: an existing queue with the same attributes answers with its URL."""
    name = p.required("QueueName")
    given = p.string_map("Attributes")
    attrs = qa.to_broker(ctx, given)
    if name.endswith(".fifo") and given.get("FifoQueue", "").lower() != "true":
        raise invalid("A queue name ending in '.fifo' is for a FIFO queue: set "
                      "FifoQueue=true.")
    tags = p.string_map("tags") or p.string_map("Tags")
    if tags:
        attrs["tags"] = tags
    await _check_allowed_by_dead_letter_queue(ctx, name, attrs)
    queue, _ = await ctx.broker.create_queue(name, attrs, region=ctx.region)
    return {"QueueUrl": ctx.queue_url(queue.name)}


async def get_queue_url(ctx: Context, p: Params) -> Output:
    """GetQueueUrl."""
    queue = await ctx.broker.get_queue(p.required("QueueName"), ctx.region)
    return {"QueueUrl": ctx.queue_url(queue.name)}


async def list_queues(ctx: Context, p: Params) -> Output:
    """ListQueues: by prefix; paged with NextToken when MaxResults is given."""
    prefix = p.text("QueueNamePrefix") or ""
    limit = p.integer("MaxResults", 1, 1000)
    after = _after(p.text("NextToken"))
    queues = await ctx.broker.list_queues(prefix, after, min((limit or 1000) + 1, 1000),
                                          region=ctx.region)
    more = limit is not None and len(queues) > limit
    queues = queues[:limit or 1000]
    return {"QueueUrls": [ctx.queue_url(q.name) for q in queues] or None,
            "NextToken": _token(queues[-1].name) if more else None}


async def delete_queue(ctx: Context, p: Params) -> Output:
    """DeleteQueue."""
    await ctx.broker.delete_queue(ctx.queue_name(p), ctx.region)
    return None


async def purge_queue(ctx: Context, p: Params) -> Output:
    """PurgeQueue."""
    await ctx.broker.purge_queue(ctx.queue_name(p), ctx.region)
    return None


async def get_queue_attributes(ctx: Context, p: Params) -> Output:
    """GetQueueAttributes: the names asked for (none asked: none answered)."""
    names = qa.requested(p.strings("AttributeNames"), qa.READABLE, "attribute name")
    queue = await ctx.broker.get_queue(ctx.queue_name(p), ctx.region)
    stats = (await ctx.broker.queue_stats(queue.name, ctx.region)
             if qa.needs_stats(names) else None)
    return {"Attributes": qa.from_queue(ctx, queue, names, stats) or None}


async def set_queue_attributes(ctx: Context, p: Params) -> Output:
    """SetQueueAttributes."""
    name = ctx.queue_name(p)
    given = p.string_map("Attributes")
    if "Attributes" not in p:
        raise SqsError(INVALID_ATTRIBUTE_NAME, "The request must contain Attributes.")
    attrs = qa.to_broker(ctx, given)
    await _check_allowed_by_dead_letter_queue(ctx, name, attrs)
    await ctx.broker.update_queue(name, attrs, ctx.region)
    return None


async def tag_queue(ctx: Context, p: Params) -> Output:
    """TagQueue: add or overwrite tags."""
    name = ctx.queue_name(p)
    tags = p.string_map("Tags")
    if not tags:
        raise invalid("The request must contain at least one tag.")
    queue = await ctx.broker.get_queue(name, ctx.region)
    merged = {**queue.attributes.tags, **tags}
    if len(merged) > MAX_TAGS:
        raise invalid(f"A queue has at most {MAX_TAGS} tags.")
    await ctx.broker.update_queue(name, {"tags": merged}, ctx.region)
    return None


async def untag_queue(ctx: Context, p: Params) -> Output:
    """UntagQueue: remove tags by key (missing keys are ignored)."""
    name = ctx.queue_name(p)
    keys = set(p.strings("TagKeys"))
    if not keys:
        raise invalid("The request must contain at least one tag key.")
    queue = await ctx.broker.get_queue(name, ctx.region)
    kept = {k: v for k, v in queue.attributes.tags.items() if k not in keys}
    await ctx.broker.update_queue(name, {"tags": kept}, ctx.region)
    return None


async def list_queue_tags(ctx: Context, p: Params) -> Output:
    """ListQueueTags."""
    queue = await ctx.broker.get_queue(ctx.queue_name(p), ctx.region)
    return {"Tags": dict(queue.attributes.tags) or None}


async def dead_letter_sources(ctx: Context, name: str) -> list[Queue]:
    """Queues of the region whose dead-letter queue is `name`, by name."""
    sources: list[Queue] = []
    after: str | None = None
    while True:
        page = await ctx.broker.list_queues("", after, 1000, region=ctx.region)
        sources.extend(q for q in page if q.attributes.dead_letter_queue == name)
        if len(page) < 1000:
            return sources
        after = page[-1].name


async def list_dead_letter_source_queues(ctx: Context, p: Params) -> Output:
    """ListDeadLetterSourceQueues, paged like ListQueues."""
    queue = await ctx.broker.get_queue(ctx.queue_name(p), ctx.region)
    limit = p.integer("MaxResults", 1, 1000)
    after = _after(p.text("NextToken"))
    sources = [q for q in await dead_letter_sources(ctx, queue.name)
               if after is None or q.name > after]
    page = sources[:limit or 1000]
    more = limit is not None and len(sources) > limit
    return {"queueUrls": [ctx.queue_url(q.name) for q in page],
            "NextToken": _token(page[-1].name) if more else None}


async def not_supported(ctx: Context, p: Params) -> Output:
    """AddPermission and RemovePermission: access policies are not kept here."""
    raise SqsError(UNSUPPORTED_OPERATION,
                   "Queue permissions are not supported by this endpoint; access control "
                   "belongs to the network and the server's own authentication.")


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
    "AddPermission": not_supported,
    "RemovePermission": not_supported,
}
