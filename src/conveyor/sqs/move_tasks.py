"""Message move tasks (StartMessageMoveTask and friends) on the broker's redrive tasks.

A task handle carries the redrive task's id and its source queue's ARN (base64), as SQS's
do, so that CancelMessageMoveTask can tell a malformed handle, a gone source queue and an
unknown task apart. ARNs name queues (and their region). A client can write any handle:
the key needs `manage` on the queue it names, and a task of another queue is unknown there.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from conveyor.broker.redrive import FifoRedriveUnsupported
from conveyor.errors import Conflict, QueueNotFound, TaskNotFound
from conveyor.models import MoveTask, Queue
from conveyor.sqs.context import Context
from conveyor.sqs.errors import UNSUPPORTED_OPERATION, SqsError
from conveyor.sqs.params import Params
from conveyor.sqs.queue_actions import dead_letter_sources
from conveyor.sqs.texts import fail

Output = dict[str, Any] | None

_STATUS = {"running": "RUNNING", "completed": "COMPLETED", "cancelled": "CANCELLED",
           "failed": "FAILED"}


def _handle(task_id: str, source_arn: str) -> str:
    return base64.urlsafe_b64encode(f"{task_id}&{source_arn}".encode()).decode()


def _unhandle(handle: str) -> tuple[str, str]:
    """(task id, source ARN) of a task handle, or AWS's error for a malformed one."""
    try:
        task_id, sep, arn = base64.urlsafe_b64decode(handle.encode()).decode().partition("&")
        uuid.UUID(task_id)
    except (ValueError, UnicodeError, binascii.Error):
        raise fail("task_handle") from None
    if not sep:
        raise fail("task_handle")
    return task_id, arn


def handle_source(handle: str) -> tuple[str, str]:
    """(region, source queue) a task handle names, or AWS's error for a malformed one."""
    found = Context.parse_arn(_unhandle(handle)[1])
    if found is None:
        raise fail("task_handle")
    return found


def _arn(ctx: Context, region: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{ctx.account_id}:{name}"


async def _queue(ctx: Context, p: Params, member: str, missing: str) -> tuple[str, Queue]:
    """(region, queue) named by an ARN member, or AWS's ResourceNotFoundException."""
    region, name = ctx.name_from_arn(p.required(member), member)
    try:
        return region, await ctx.broker.get_queue(name, region)
    except QueueNotFound:
        raise fail(missing) from None


async def start_message_move_task(ctx: Context, p: Params) -> Output:
    """StartMessageMoveTask: move a dead-letter queue's messages back to their sources
    (or to DestinationArn)."""
    region, source = await _queue(ctx, p, "SourceArn", "source_arn_missing")
    destination: str | None = None
    if "DestinationArn" in p:
        dest_region, dest = await _queue(ctx, p, "DestinationArn", "destination_arn_missing")
        if dest_region != region:
            raise fail("destination_arn_missing")
        destination = dest.name
    rate = p.integer("MaxNumberOfMessagesPerSecond", 1, 500)
    scoped = Context(ctx.broker, region, ctx.account_id, ctx.base_url, state=ctx.state)
    if not await dead_letter_sources(scoped, source.name):
        raise fail("not_a_dead_letter_queue")
    try:
        task = await ctx.broker.start_redrive(source.name, destination, rate, region, wait=0)
    except Conflict:
        raise fail("task_running") from None
    except FifoRedriveUnsupported as exc:
        # AWS: "FIFO queues don't support redrive"; its documented error is
        # UnsupportedOperation. (A FIFO dead-letter queue's messages keep their group ids,
        # so conveyor moves them back to FIFO queues; the refusal is the broker's.)
        raise SqsError(UNSUPPORTED_OPERATION, exc.message) from None
    return {"TaskHandle": _handle(task.id, _arn(ctx, region, source.name))}


def _task_out(ctx: Context, region: str, task: MoveTask) -> dict[str, Any]:
    return {
        "TaskHandle": _handle(task.id, _arn(ctx, region, task.source_queue))
        if task.status == "running" else None,
        "Status": _STATUS.get(task.status, task.status.upper()),
        "SourceArn": _arn(ctx, region, task.source_queue),
        "DestinationArn": (_arn(ctx, region, task.destination_queue)
                           if task.destination_queue else None),
        "MaxNumberOfMessagesPerSecond": task.max_per_second,
        "ApproximateNumberOfMessagesMoved": task.moved,
        "ApproximateNumberOfMessagesToMove": task.to_move,
        "FailureReason": task.error,
        "StartedTimestamp": task.started_at,
    }


async def list_message_move_tasks(ctx: Context, p: Params) -> Output:
    """ListMessageMoveTasks: the most recent tasks of a source queue, newest first."""
    region, source = await _queue(ctx, p, "SourceArn", "source_arn_missing")
    limit = p.integer("MaxResults", 1, 10) or 1
    tasks = await ctx.broker.redrive.list(source.name, region)
    return {"Results": [_task_out(ctx, region, t) for t in tasks[:limit]]}


async def cancel_message_move_task(ctx: Context, p: Params) -> Output:
    """CancelMessageMoveTask: stops after the current batch; moved messages stay moved."""
    handle = p.required("TaskHandle")
    task_id, _ = _unhandle(handle)
    region, name = handle_source(handle)
    try:
        await ctx.broker.get_queue(name, region)
    except QueueNotFound:
        raise fail("source_arn_missing") from None
    try:
        # The handle is the client's to write: the key was checked on the queue it names
        # (`conveyor.sqs.auth`), so another queue's task is not one of this queue's.
        if (await ctx.broker.redrive.get(task_id)).source_queue != name:
            raise fail("task_missing")
        task = await ctx.broker.redrive.cancel(task_id)
    except TaskNotFound:
        raise fail("task_missing") from None
    except Conflict:
        raise fail("task_not_running") from None
    return {"ApproximateNumberOfMessagesMoved": task.moved}


HANDLERS: dict[str, Callable[[Context, Params], Awaitable[Output]]] = {
    "StartMessageMoveTask": start_message_move_task,
    "ListMessageMoveTasks": list_message_move_tasks,
    "CancelMessageMoveTask": cancel_message_move_task,
}
