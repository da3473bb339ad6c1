"""Message move tasks (StartMessageMoveTask and friends) on the broker's redrive tasks.

The task handle is the redrive task's id; ARNs name queues (and their region).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from conveyor.models import MoveTask
from conveyor.sqs.context import Context
from conveyor.sqs.errors import invalid
from conveyor.sqs.params import Params
from conveyor.sqs.queue_actions import dead_letter_sources

Output = dict[str, Any] | None

_STATUS = {"running": "RUNNING", "completed": "COMPLETED", "cancelled": "CANCELLED",
           "failed": "FAILED"}


def _arn(ctx: Context, region: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{ctx.account_id}:{name}"


async def start_message_move_task(ctx: Context, p: Params) -> Output:
    """StartMessageMoveTask: move a dead-letter queue's messages back to their sources
    (or to DestinationArn)."""
    region, source = ctx.name_from_arn(p.required("SourceArn"), "SourceArn")
    destination: str | None = None
    if "DestinationArn" in p:
        dest_region, destination = ctx.name_from_arn(p.required("DestinationArn"),
                                                     "DestinationArn")
        if dest_region != region:
            raise invalid("The destination queue must be in the source queue's region.")
    rate = p.integer("MaxNumberOfMessagesPerSecond", 1, 500)
    await ctx.broker.get_queue(source, region)
    scoped = Context(ctx.broker, region, ctx.account_id, ctx.base_url)
    if not await dead_letter_sources(scoped, source):
        raise invalid("Source queue must be configured as a Dead Letter Queue.")
    task = await ctx.broker.start_redrive(source, destination, rate, region, wait=0)
    return {"TaskHandle": task.id}


def _task_out(ctx: Context, region: str, task: MoveTask) -> dict[str, Any]:
    return {
        "TaskHandle": task.id if task.status == "running" else None,
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
    region, source = ctx.name_from_arn(p.required("SourceArn"), "SourceArn")
    limit = p.integer("MaxResults", 1, 10) or 1
    tasks = await ctx.broker.redrive.list(source, region)
    return {"Results": [_task_out(ctx, region, t) for t in tasks[:limit]]}


async def cancel_message_move_task(ctx: Context, p: Params) -> Output:
    """CancelMessageMoveTask: stops after the current batch; moved messages stay moved."""
    task = await ctx.broker.redrive.cancel(p.required("TaskHandle"))
    return {"ApproximateNumberOfMessagesMoved": task.moved}


HANDLERS: dict[str, Callable[[Context, Params], Awaitable[Output]]] = {
    "StartMessageMoveTask": start_message_move_task,
    "ListMessageMoveTasks": list_message_move_tasks,
    "CancelMessageMoveTask": cancel_message_move_task,
}
