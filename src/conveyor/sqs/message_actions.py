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
from conveyor.ids import decode_receipt_handle
from conveyor.models import (
    Body,
    EntryResult,
    Message,
    Queue,
    SendEntry,
    SendResult,
    VisibilityEntry,
)
from conveyor.sqs import attributes as qa
from conveyor.sqs.context import Context
from conveyor.sqs.errors import SqsError, missing
from conveyor.sqs.md5 import md5_of_attributes, md5_of_body
from conveyor.sqs.params import Params
from conveyor.sqs.texts import fail, from_domain

Output = dict[str, Any] | None
T = TypeVar("T")

MAX_BATCH = 10
MAX_BATCH_BYTES = 1_048_576
_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,128}")  # group, deduplication and attempt ids
# SQS's allowed characters: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF.
_FORBIDDEN = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# sending -------------------------------------------------------------------------------
class _Outgoing:
    """One message to send, parsed from the wire, with the digests to answer."""

    def __init__(self, p: Params, queue: Queue) -> None:
        body = p.text("MessageBody")
        if not body:
            raise missing("MessageBody")
        if _FORBIDDEN.search(body):
            raise fail("message_contents")
        attrs = queue.attributes
        delay = p.integer("DelaySeconds", 0, MAX_DELAY_SQS, "delay_seconds")
        attributes = qa.parse_message_attributes(p.map("MessageAttributes"))
        system = qa.parse_system_attributes(p.map("MessageSystemAttributes"))
        group, dedup = p.text("MessageGroupId"), p.text("MessageDeduplicationId")
        for member, token in (("MessageGroupId", group), ("MessageDeduplicationId", dedup)):
            if token is not None and not _TOKEN.fullmatch(token):
                raise fail("fifo_token", name=member, value=token)
        if attrs.fifo:
            if delay:  # 0 is what the queue does anyway, so SQS accepts it
                raise fail("fifo_delay", value=delay)
            delay = None
            if group is None:
                raise missing("MessageGroupId")
            if dedup is None and not attrs.content_based_deduplication:
                raise fail("dedup_required")
        elif dedup is not None:
            raise fail("standard_dedup", value=dedup)
        self.size = len(body.encode("utf-8", "surrogatepass")) + qa.attributes_size(attributes)
        if self.size > attrs.max_message_bytes:
            raise fail("message_too_long", limit=attrs.max_message_bytes)
        self.entry = SendEntry(Body(body), delay, qa.with_trace_header(attributes, system),
                               deduplication_id=dedup, group_id=group)
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


def _check_batch(entries: Sequence[Params], entry_name: str) -> list[str]:
    if not entries:
        raise fail("empty_batch", entry=entry_name)
    if len(entries) > MAX_BATCH:
        raise fail("too_many_entries", count=len(entries))
    ids = [e.text("Id") or "" for e in entries]
    for entry_id in ids:
        if not _ENTRY_ID.fullmatch(entry_id):
            raise fail("batch_entry_id")
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise fail("batch_ids_not_distinct", id=duplicate)
    return ids


def _failed(entry_id: str, error: SqsError) -> dict[str, Any]:
    code = error.kind.code.removeprefix("AWS.SimpleQueueService.")
    return {"Id": entry_id, "SenderFault": error.kind.sender, "Code": code,
            "Message": error.message}


async def send_message_batch(ctx: Context, p: Params) -> Output:
    """SendMessageBatch: every valid entry is sent; each bad one is reported in Failed."""
    entries = p.entries()
    queue = await ctx.broker.queue(ctx.queue_name(p), ctx.region)
    ids = _check_batch(entries, "SendMessageBatchRequestEntry")
    if queue.attributes.fifo:
        for entry in entries:
            if "MessageDeduplicationId" not in entry and \
                    not queue.attributes.content_based_deduplication:
                raise fail("dedup_required")
            if "MessageGroupId" not in entry:
                raise fail("batch_group_missing")
    total = sum(len((e.text("MessageBody") or "").encode("utf-8", "surrogatepass"))
                + _raw_attributes_size(e) for e in entries)
    if total > MAX_BATCH_BYTES:
        raise fail("batch_too_long", size=total)
    pending: dict[str, _Outgoing] = {}
    failed: list[dict[str, Any]] = []
    for entry_id, entry in zip(ids, entries, strict=True):
        try:
            pending[entry_id] = _Outgoing(entry, queue)
        except SqsError as exc:
            failed.append(_failed(entry_id, exc))
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


def _raw_attributes_size(p: Params) -> int:
    """What an entry's attributes weigh as sent (before they are checked)."""
    size = 0
    raw = p.raw("MessageAttributes")
    for name, item in (raw.items() if isinstance(raw, dict) else ()):
        size += len(str(name).encode())
        if isinstance(item, dict):
            size += sum(len(str(v).encode()) for k, v in item.items()
                        if k in ("DataType", "StringValue", "BinaryValue"))
    return size


# receiving -----------------------------------------------------------------------------
async def receive_message(ctx: Context, p: Params) -> Output:
    """ReceiveMessage: long-polls up to WaitTimeSeconds (the queue's default otherwise).

    On FIFO queues a retry with the same ReceiveRequestAttemptId within 5 minutes answers
    the same messages and receipt handles (their visibility timeout starts again), as long
    as none of them was deleted or had its visibility changed since."""
    name = ctx.queue_name(p)
    limit = p.integer("MaxNumberOfMessages", 1, MAX_BATCH, "max_messages") or 1
    visibility = p.integer("VisibilityTimeout", 0, MAX_VISIBILITY, "visibility_timeout")
    wait = p.integer("WaitTimeSeconds", 0, MAX_WAIT, "wait_time")
    attempt = p.text("ReceiveRequestAttemptId")
    if attempt is not None and not _TOKEN.fullmatch(attempt):
        raise fail("attempt_id", value=attempt)
    system_names = qa.system_names([*p.strings("AttributeNames"),
                                    *p.strings("MessageSystemAttributeNames")])
    attribute_names = p.strings("MessageAttributeNames")
    queue = await ctx.broker.queue(name, ctx.region)
    attempts = ctx.state.attempts if queue.attributes.fifo and attempt else None
    if attempts is not None and attempt is not None:
        replay = await _replay(ctx, queue, attempt, visibility)
        if replay is not None:
            return {"Messages": [_message_out(ctx, m, system_names, attribute_names)
                                 for m in replay]}
    messages = await ctx.broker.receive(queue.name, limit, visibility, wait, ctx.region,
                                        abandoned=ctx.gone)
    if attempts is not None and attempt is not None and messages:
        attempts.put(ctx.region, queue.name, attempt, list(messages))
    # None received: no Messages member at all (SQS answers `{}` in JSON, an empty
    # ReceiveMessageResult in XML; SDKs then leave the list unset).
    return {"Messages": [_message_out(ctx, m, system_names, attribute_names)
                         for m in messages] or None}


async def _replay(ctx: Context, queue: Queue, attempt: str,
                  visibility: int | None) -> list[Message] | None:
    """The messages of an earlier receive with this attempt id, their leases renewed; None
    when there is none or one of them was deleted or changed since."""
    earlier = ctx.state.attempts.get(ctx.region, queue.name, attempt)
    if earlier is None:
        return None
    timeout = queue.attributes.visibility_timeout if visibility is None else visibility
    results = await ctx.broker.change_visibility(
        queue.name, [VisibilityEntry(m.receipt_handle, timeout) for m in earlier], ctx.region)
    if all(r.ok for r in results):
        return earlier
    ctx.state.attempts.forget(ctx.region, queue.name, attempt)
    return None


def _message_out(ctx: Context, message: Message, system_names: tuple[str, ...],
                 attribute_names: list[str]) -> dict[str, Any]:
    user, trace = qa.split_trace_header(message.attributes)
    chosen = qa.select_message_attributes(user, attribute_names)
    system = qa.system_attributes(message, system_names, ctx.account_id, trace)
    out = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": md5_of_body(message.body.text),
        "Body": message.body.text,
        "Attributes": system or None,
        "MD5OfMessageAttributes": md5_of_attributes(chosen) if chosen else None,
        # Names asked that match none of the message's attributes answer {} (as SQS does).
        "MessageAttributes": qa.message_attributes_out(chosen)
        if chosen or (attribute_names and user) else None,
    }
    # SQS leaves absent members out (a JSON null trips strict SDK parsers).
    return {k: v for k, v in out.items() if v is not None}


# acknowledging -------------------------------------------------------------------------
def _entry_error(result: EntryResult, stale: str | None) -> SqsError | None:
    """The error of one acknowledgement; `stale` is the row for a handle whose lease is
    over (None: that succeeds)."""
    if result.status == "invalid":
        return fail("receipt_handle", handle=result.receipt_handle)
    if result.status == "stale" and stale is not None:
        return fail(stale, handle=result.receipt_handle)
    return None


def _delete_entry(p: Params) -> str:
    return p.required("ReceiptHandle")


def _visibility_entry(p: Params) -> VisibilityEntry:
    handle = p.required("ReceiptHandle")
    timeout = p.integer("VisibilityTimeout", 0, MAX_VISIBILITY, "visibility_limit")
    if timeout is None:
        raise missing("VisibilityTimeout")
    return VisibilityEntry(handle, timeout)


async def _acknowledge(entries: Sequence[Params], parse: Callable[[Params], T],
                       call: Callable[[list[T]], Awaitable[list[EntryResult]]],
                       stale: str | None) -> list[SqsError | None]:
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
            outcomes[i] = _entry_error(result, stale)
    return outcomes


async def _single(p: Params, parse: Callable[[Params], T],
                  call: Callable[[list[T]], Awaitable[list[EntryResult]]],
                  stale: str | None) -> Output:
    [error] = await _acknowledge([p], parse, call, stale)
    if error is not None:
        raise error
    return None


async def _batch(p: Params, entry_name: str, parse: Callable[[Params], T],
                 call: Callable[[list[T]], Awaitable[list[EntryResult]]],
                 stale: str | None) -> Output:
    entries = p.entries()
    ids = _check_batch(entries, entry_name)
    outcomes = await _acknowledge(entries, parse, call, stale)
    return {"Successful": [{"Id": i} for i, o in zip(ids, outcomes, strict=True) if o is None],
            "Failed": [_failed(i, o) for i, o in zip(ids, outcomes, strict=True) if o is not None]}


async def _queue(ctx: Context, p: Params) -> Queue:
    """The request's queue, which must exist (before its entries are looked at)."""
    return await ctx.broker.queue(ctx.queue_name(p), ctx.region)


def _deleter(ctx: Context, queue: Queue) -> Callable[[list[str]], Awaitable[list[EntryResult]]]:
    """Delete by receipt handles. On a standard queue an older handle (the message was
    received again since) succeeds without deleting, as the DeleteMessage reference says;
    on a FIFO queue a handle whose lease is over is refused as expired, as SQS does."""
    if not queue.attributes.fifo:
        return lambda handles: ctx.broker.delete(queue.name, handles, ctx.region)

    async def delete(handles: list[str]) -> list[EntryResult]:
        results: list[EntryResult] = []
        for handle in handles:
            try:
                message_id, token = decode_receipt_handle(handle)
            except InvalidInput:
                results.append(EntryResult(handle, "invalid"))
                continue
            deleted = await ctx.broker.delete_leased(queue.name, message_id, ctx.region, token)
            results.append(EntryResult(handle, "ok" if deleted else "stale"))
        return results
    return delete


async def delete_message(ctx: Context, p: Params) -> Output:
    """DeleteMessage."""
    queue = await _queue(ctx, p)
    return await _single(p, _delete_entry, _deleter(ctx, queue),
                         "receipt_expired" if queue.attributes.fifo else None)


async def delete_message_batch(ctx: Context, p: Params) -> Output:
    """DeleteMessageBatch (per entry as DeleteMessage)."""
    queue = await _queue(ctx, p)
    return await _batch(p, "DeleteMessageBatchRequestEntry", _delete_entry,
                        _deleter(ctx, queue),
                        "receipt_expired" if queue.attributes.fifo else None)


async def change_message_visibility(ctx: Context, p: Params) -> Output:
    """ChangeMessageVisibility: a handle whose lease is over (deleted, expired, received
    again) names no message available for a visibility change."""
    name = (await _queue(ctx, p)).name
    return await _single(p, _visibility_entry, lambda changes: ctx.broker.change_visibility(
        name, changes, ctx.region), "not_in_flight")


async def change_message_visibility_batch(ctx: Context, p: Params) -> Output:
    """ChangeMessageVisibilityBatch."""
    name = (await _queue(ctx, p)).name
    return await _batch(p, "ChangeMessageVisibilityBatchRequestEntry", _visibility_entry,
                        lambda changes: ctx.broker.change_visibility(name, changes, ctx.region),
                        "not_in_flight")


HANDLERS: dict[str, Callable[[Context, Params], Awaitable[Output]]] = {
    "SendMessage": send_message,
    "SendMessageBatch": send_message_batch,
    "ReceiveMessage": receive_message,
    "DeleteMessage": delete_message,
    "DeleteMessageBatch": delete_message_batch,
    "ChangeMessageVisibility": change_message_visibility,
    "ChangeMessageVisibilityBatch": change_message_visibility_batch,
}
