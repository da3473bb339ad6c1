"""Message actions: send, receive, delete and change visibility, single and batched.

SQS limits the broker does not know (batches of 10, entry ids, DelaySeconds up to 15
minutes, the characters a body may hold) are checked here; the rest is the broker's.
Batch calls answer per entry: an entry that fails does not fail the others.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from conveyor.broker.validation import MAX_DELAY_SQS, MAX_VISIBILITY, MAX_WAIT
from conveyor.errors import InvalidInput
from conveyor.models import Body, EntryResult, Queue, SendEntry, SendResult, VisibilityEntry
from conveyor.sqs import attributes as qa
from conveyor.sqs.context import Context
from conveyor.sqs.errors import (
    BATCH_IDS_NOT_DISTINCT,
    BATCH_TOO_LONG,
    EMPTY_BATCH,
    INVALID_BATCH_ENTRY_ID,
    INVALID_MESSAGE_CONTENTS,
    MESSAGE_NOT_INFLIGHT,
    RECEIPT_HANDLE_IS_INVALID,
    TOO_MANY_ENTRIES,
    SqsError,
    from_domain,
    invalid,
    missing,
)
from conveyor.sqs.md5 import md5_of_attributes, md5_of_body
from conveyor.sqs.params import Params

Output = dict[str, Any] | None
T = TypeVar("T")

MAX_BATCH = 10
MAX_BATCH_BYTES = 1_048_576
_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
# SQS's allowed characters: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF.
_FORBIDDEN = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# sending -------------------------------------------------------------------------------
class _Outgoing:
    """One message to send, parsed from the wire, with the digests to answer."""

    def __init__(self, p: Params, queue: Queue) -> None:
        body = p.text("MessageBody")
        if not body:
            raise missing("MessageBody")
        bad = _FORBIDDEN.search(body)
        if bad is not None:
            raise SqsError(INVALID_MESSAGE_CONTENTS, "Invalid binary character "
                           f"'#x{ord(bad.group()):X}' was found in the message body, the set "
                           "of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | "
                           "#xE000 to #xFFFD | #x10000 to #x10FFFF")
        delay = p.integer("DelaySeconds", 0, MAX_DELAY_SQS)
        attributes = qa.parse_message_attributes(p.map("MessageAttributes"))
        system = qa.parse_message_attributes(p.map("MessageSystemAttributes"))
        if set(system) - {"AWSTraceHeader"}:
            raise invalid("The only supported message system attribute is AWSTraceHeader.")
        group, dedup = p.text("MessageGroupId"), p.text("MessageDeduplicationId")
        attrs = queue.attributes
        if attrs.fifo:
            if group is None:
                raise missing("MessageGroupId")
            if dedup is None and not attrs.content_based_deduplication:
                raise invalid("The queue should either have ContentBasedDeduplication "
                              "enabled or MessageDeduplicationId provided explicitly")
            if delay is not None:
                raise invalid(f"Value {delay} for parameter DelaySeconds is invalid. Reason: "
                              "The request include parameter that is not valid for this "
                              "queue type.")
        elif dedup is not None:
            raise invalid("The request include parameter MessageDeduplicationId that is not "
                          "valid for this queue type.")
        self.entry = SendEntry(Body(body), delay, attributes, deduplication_id=dedup,
                               group_id=group)
        self.size = len(body.encode("utf-8", "surrogatepass")) + sum(
            len(k) + len(a.type) + len(a.value if isinstance(a.value, bytes)
                                       else a.value.encode()) for k, a in attributes.items())
        self.digests = {
            "MD5OfMessageBody": md5_of_body(body),
            "MD5OfMessageAttributes": md5_of_attributes(attributes),
            "MD5OfMessageSystemAttributes": md5_of_attributes(system),
        }


def _sent(outgoing: _Outgoing, result: SendResult) -> dict[str, Any]:
    return {"MessageId": result.id, **outgoing.digests,
            "SequenceNumber": result.sequence_number}


async def send_message(ctx: Context, p: Params) -> Output:
    """SendMessage."""
    queue = await ctx.broker.queue(ctx.queue_name(p), ctx.region)
    outgoing = _Outgoing(p, queue)
    [result] = await ctx.broker.send(queue.name, [outgoing.entry], ctx.region)
    return _sent(outgoing, result)


def _check_batch(entries: Sequence[Params]) -> list[str]:
    if not entries:
        raise SqsError(EMPTY_BATCH, "There should be at least one entry in the request.")
    if len(entries) > MAX_BATCH:
        raise SqsError(TOO_MANY_ENTRIES, f"Maximum number of entries per request are "
                       f"{MAX_BATCH}. You have sent {len(entries)}.")
    ids = [e.text("Id") or "" for e in entries]
    for entry_id in ids:
        if not _ENTRY_ID.fullmatch(entry_id):
            raise SqsError(INVALID_BATCH_ENTRY_ID, f"A batch entry id {entry_id[:100]!r} "
                           "can only contain alphanumeric characters, hyphens and "
                           "underscores. It can be at most 80 letters long.")
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise SqsError(BATCH_IDS_NOT_DISTINCT, f"Id {duplicate} repeated.")
    return ids


def _failed(entry_id: str, error: SqsError) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": error.kind.sender, "Code": error.kind.shape,
            "Message": error.message}


async def send_message_batch(ctx: Context, p: Params) -> Output:
    """SendMessageBatch: every valid entry is sent; each bad one is reported in Failed."""
    entries = p.entries()
    ids = _check_batch(entries)
    queue = await ctx.broker.queue(ctx.queue_name(p), ctx.region)
    pending: dict[str, _Outgoing] = {}
    failed: list[dict[str, Any]] = []
    for entry_id, entry in zip(ids, entries, strict=True):
        try:
            pending[entry_id] = _Outgoing(entry, queue)
        except SqsError as exc:
            failed.append(_failed(entry_id, exc))
    total = sum(o.size for o in pending.values())
    if total > MAX_BATCH_BYTES:
        raise SqsError(BATCH_TOO_LONG, f"Batch requests cannot be longer than "
                       f"{MAX_BATCH_BYTES} bytes. You have sent {total} bytes.")
    successful: list[dict[str, Any]] = []
    while pending:
        keys = list(pending)
        try:
            results = await ctx.broker.send(
                queue.name, [pending[k].entry for k in keys], ctx.region)
        except InvalidInput as exc:
            if exc.index is None:
                raise
            failed.append(_failed(keys[exc.index], from_domain(exc)))
            del pending[keys[exc.index]]
            continue
        successful.extend({"Id": k, **_sent(pending[k], r)}
                          for k, r in zip(keys, results, strict=True))
        break
    order = {entry_id: i for i, entry_id in enumerate(ids)}
    successful.sort(key=lambda e: order[e["Id"]])
    failed.sort(key=lambda e: order[e["Id"]])
    return {"Successful": successful, "Failed": failed}


# receiving -----------------------------------------------------------------------------
async def receive_message(ctx: Context, p: Params) -> Output:
    """ReceiveMessage: long-polls up to WaitTimeSeconds (the queue's default otherwise)."""
    name = ctx.queue_name(p)
    limit = p.integer("MaxNumberOfMessages", 1, MAX_BATCH) or 1
    visibility = p.integer("VisibilityTimeout", 0, MAX_VISIBILITY)
    wait = p.integer("WaitTimeSeconds", 0, MAX_WAIT)
    asked = [*p.strings("AttributeNames"), *p.strings("MessageSystemAttributeNames")]
    system_names = qa.SYSTEM_ATTRIBUTES if "All" in asked else tuple(
        n for n in qa.SYSTEM_ATTRIBUTES if n in asked)
    attribute_names = p.strings("MessageAttributeNames")
    messages = await ctx.broker.receive(name, limit, visibility, wait, ctx.region)
    out: list[dict[str, Any]] = []
    for message in messages:
        chosen = qa.select_message_attributes(message.attributes, attribute_names)
        system = qa.system_attributes(message, system_names, ctx.account_id)
        out.append({
            "MessageId": message.id,
            "ReceiptHandle": message.receipt_handle,
            "MD5OfBody": md5_of_body(message.body.text),
            "Body": message.body.text,
            "Attributes": system or None,
            "MD5OfMessageAttributes": md5_of_attributes(chosen),
            "MessageAttributes": qa.message_attributes_out(chosen) or None,
        })
    return {"Messages": out or None}


# acknowledging -------------------------------------------------------------------------
def _entry_error(result: EntryResult, stale_is_error: bool) -> SqsError | None:
    if result.status == "invalid":
        return SqsError(RECEIPT_HANDLE_IS_INVALID,
                        result.message or "The receipt handle is invalid.")
    if result.status == "stale" and stale_is_error:
        return SqsError(MESSAGE_NOT_INFLIGHT, result.message or "The message is not in flight.")
    return None


def _delete_entry(p: Params) -> str:
    return p.required("ReceiptHandle")


def _visibility_entry(p: Params) -> VisibilityEntry:
    handle = p.required("ReceiptHandle")
    timeout = p.integer("VisibilityTimeout", 0, MAX_VISIBILITY)
    if timeout is None:
        raise missing("VisibilityTimeout")
    return VisibilityEntry(handle, timeout)


async def _acknowledge(entries: Sequence[Params], parse: Callable[[Params], T],
                       call: Callable[[list[T]], Awaitable[list[EntryResult]]],
                       stale_is_error: bool) -> list[SqsError | None]:
    """Parse each entry, run the valid ones in one broker call, and return per entry
    the error to report (None: it succeeded)."""
    outcomes: list[SqsError | None] = [None] * len(entries)
    parsed: dict[int, T] = {}
    for i, entry in enumerate(entries):
        try:
            parsed[i] = parse(entry)
        except SqsError as exc:
            outcomes[i] = exc
    if parsed:
        for i, result in zip(parsed, await call(list(parsed.values())), strict=True):
            outcomes[i] = _entry_error(result, stale_is_error)
    return outcomes


async def _single(p: Params, parse: Callable[[Params], T],
                  call: Callable[[list[T]], Awaitable[list[EntryResult]]],
                  stale_is_error: bool) -> Output:
    [error] = await _acknowledge([p], parse, call, stale_is_error)
    if error is not None:
        raise error
    return None


async def _batch(p: Params, parse: Callable[[Params], T],
                 call: Callable[[list[T]], Awaitable[list[EntryResult]]],
                 stale_is_error: bool) -> Output:
    entries = p.entries()
    ids = _check_batch(entries)
    outcomes = await _acknowledge(entries, parse, call, stale_is_error)
    return {"Successful": [{"Id": i} for i, o in zip(ids, outcomes, strict=True) if o is None],
            "Failed": [_failed(i, o) for i, o in zip(ids, outcomes, strict=True) if o is not None]}


async def delete_message(ctx: Context, p: Params) -> Output:
    """DeleteMessage: a stale receipt handle succeeds without deleting (as in SQS)."""
    name = ctx.queue_name(p)
    return await _single(p, _delete_entry,
                         lambda handles: ctx.broker.delete(name, handles, ctx.region), False)


async def delete_message_batch(ctx: Context, p: Params) -> Output:
    """DeleteMessageBatch."""
    name = ctx.queue_name(p)
    return await _batch(p, _delete_entry,
                        lambda handles: ctx.broker.delete(name, handles, ctx.region), False)


async def change_message_visibility(ctx: Context, p: Params) -> Output:
    """ChangeMessageVisibility: a message no longer leased by this handle is not in flight."""
    name = ctx.queue_name(p)
    return await _single(p, _visibility_entry, lambda changes: ctx.broker.change_visibility(
        name, changes, ctx.region), True)


async def change_message_visibility_batch(ctx: Context, p: Params) -> Output:
    """ChangeMessageVisibilityBatch."""
    name = ctx.queue_name(p)
    return await _batch(p, _visibility_entry, lambda changes: ctx.broker.change_visibility(
        name, changes, ctx.region), True)


HANDLERS: dict[str, Callable[[Context, Params], Awaitable[Output]]] = {
    "SendMessage": send_message,
    "SendMessageBatch": send_message_batch,
    "ReceiveMessage": receive_message,
    "DeleteMessage": delete_message,
    "DeleteMessageBatch": delete_message_batch,
    "ChangeMessageVisibility": change_message_visibility,
    "ChangeMessageVisibilityBatch": change_message_visibility_batch,
}
