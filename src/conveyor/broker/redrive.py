"""Redrive: move a dead-letter queue's messages back, as a task that can be polled.

The native `POST /v1/queues/{q}/redrive` and SQS's StartMessageMoveTask both use it.
A task runs on the node that started it; progress and cancellation go through the
database, so any node can read or cancel it.

Without a destination, a redrive of a queue that no queue names as its dead-letter queue
and that holds no dead letter whose source still exists is refused
(`NotADeadLetterQueue`): it could only ever report "moved 0". A destination moves whatever
the queue holds (a dead-letter queue whose sources were deleted, copies a worker or a
notifier put there); SQS's StartMessageMoveTask asks for a configured one either way.

A destination must name a queue (an empty one is refused, not read as "none") other than
the source. A standard queue's messages cannot go into a FIFO queue
(`FifoRedriveUnsupported`): they carry no message group id, so a FIFO queue would hold
them visible and never deliver them. A FIFO dead-letter queue's messages keep their group
ids, so they may go back to their FIFO sources or to another FIFO queue. Each refusal
comes before anything is recorded or moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from conveyor.broker.queue_rules import dead_letter_sources
from conveyor.errors import Conflict, InvalidInput, TaskNotFound
from conveyor.storage.base import MessageMoveParams
from conveyor.tasks import stop_task

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker
    from conveyor.models import MoveTask, Queue

log = logging.getLogger("conveyor.redrive")

__all__ = ["BATCH", "FifoRedriveUnsupported", "NotADeadLetterQueue", "Redrive"]

BATCH = 1000
RUNNER_GONE_AFTER_MS = 60_000
"""A running task whose runner saved no progress for this long has none (see `_lapse`)."""


class NotADeadLetterQueue(InvalidInput):
    """The queue is no queue's dead-letter queue: a redrive has nothing to move back."""

    code = "not_a_dead_letter_queue"


class FifoRedriveUnsupported(InvalidInput):
    """A standard queue's messages (no message group id) cannot be moved into a FIFO queue."""

    code = "fifo_redrive_unsupported"


def check_destination(source: Queue, dest: Queue) -> None:
    """A move from `source` to `dest` is one a redrive may make: not onto itself, and not
    from a standard queue into a FIFO queue."""
    if dest.id == source.id:
        raise InvalidInput(f"Queue {source.name!r} cannot be redriven onto itself; give "
                           "another queue as the destination, or none to move its "
                           "messages back to their sources.", field="destination")
    if dest.attributes.fifo and not source.attributes.fifo:
        raise FifoRedriveUnsupported(
            f"Messages of the standard queue {source.name!r} carry no message group id, so "
            f"they cannot be moved into the FIFO queue {dest.name!r}; give a standard "
            "queue as the destination.", field="destination")


class Redrive:
    """Starts, runs, lists and cancels move tasks for one broker."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._running: dict[str, asyncio.Task[None]] = {}

    async def start(self, queue_name: str, destination: str | None = None,
                    max_per_second: int | None = None, region: str | None = None,
                    wait: float = 1.0) -> MoveTask:
        """Start moving messages out of `queue_name`: to `destination`, or else each back
        to the queue it was dead-lettered from, with its receive count reset (then the
        queue must be some queue's dead-letter queue or hold such dead letters, else
        `NotADeadLetterQueue`).

        Waits up to `wait` seconds and returns the task as it then stands: `completed`
        for a small queue, `running` otherwise (poll it with `get`).
        """
        from conveyor.models import MoveTask

        broker = self._broker
        if destination is not None and not destination:
            raise InvalidInput("destination must name a queue; leave it out to move the "
                               "messages back to their sources.", field="destination")
        source = await broker.queue(queue_name, region)
        dest = await broker.queue(destination, region) if destination is not None else None
        if dest is not None:
            check_destination(source, dest)
        if max_per_second is not None and (isinstance(max_per_second, bool) or not isinstance(
                max_per_second, int) or not 1 <= max_per_second <= 500):
            raise InvalidInput("max_per_second must be between 1 and 500.",
                               field="max_per_second")
        for task in await broker.storage.move_task_list(source.id):
            if (await self._lapse(task)).status == "running":
                raise Conflict(f"A move task is already running on {queue_name!r}.")
        to_move = await broker.storage.message_count_movable(source.id, broker.now(),
                                                             dest.id if dest else None)
        # The sources are looked up only when nothing could go back (a full list of
        # queues): a dead-letter queue with dead letters to move is one.
        if dest is None and not to_move and not await dead_letter_sources(
                broker, source.name, region):
            raise NotADeadLetterQueue(
                f"Queue {source.name!r} is no queue's dead-letter queue and holds no dead "
                "letter whose source queue still exists, so a redrive could move nothing "
                "back; give a destination to move its messages there.", field="queue")
        task = MoveTask(
            id=str(uuid.uuid4()), source_queue=source.name,
            destination_queue=dest.name if dest else None, status="running", moved=0,
            to_move=to_move, max_per_second=max_per_second, started_at=broker.wall_now(),
            finished_at=None, updated_at=broker.wall_now())
        await broker.storage.move_task_create(source.id, task)
        runner = asyncio.create_task(self._run(task, source.id, dest.id if dest else None))
        self._running[task.id] = runner
        runner.add_done_callback(lambda _: self._running.pop(task.id, None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(runner), wait)
        return await self.get(task.id)

    async def _run(self, task: MoveTask, source_id: int, dest_id: int | None) -> None:
        broker = self._broker
        storage = broker.storage
        batch = min(BATCH, task.max_per_second or BATCH)
        try:
            while True:
                started = time.monotonic()
                # Look for a cancel before moving, not after: a cancel made while this
                # runner slept must not move one more batch.
                current = await storage.move_task_get(task.id)
                if current is None or current.status == "cancelled":
                    return
                moved = await storage.message_move(
                    MessageMoveParams(source_id, dest_id, batch, broker.now()))
                if moved:
                    broker.wake(None)
                    if dest_id is not None:
                        await broker.signal(dest_id)
                task = replace(task, moved=task.moved + moved, updated_at=broker.wall_now())
                if moved < batch:
                    task = replace(task, status="completed", finished_at=broker.wall_now())
                if not await storage.move_task_update(task) or task.status == "completed":
                    return  # cancelled meanwhile, or done
                if task.max_per_second:
                    await asyncio.sleep(max(0.0, moved / task.max_per_second
                                            - (time.monotonic() - started)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # record the failure on the task for whoever polls it
            log.exception("move task %s failed", task.id)
            try:
                await storage.move_task_update(replace(
                    task, status="failed", error=str(exc)[:500], finished_at=broker.wall_now()))
            except Exception as again:  # (the database is down: nobody awaits this task)
                log.warning("move task %s: its failure could not be recorded either: %s",
                            task.id, again)

    async def get(self, task_id: str) -> MoveTask:
        """One task by id, or TaskNotFound."""
        task = await self._broker.storage.move_task_get(task_id)
        if task is None:
            raise TaskNotFound(f"Task {task_id[:100]!r} does not exist.")
        return await self._lapse(task)

    async def _lapse(self, task: MoveTask) -> MoveTask:
        """`task`, or `failed` if it is running with no runner (its server exited mid-way:
        it saves its progress at least every second or two while it runs, here or on
        another node); else it would stay running for good, and no redrive of its queue
        could start again."""
        broker = self._broker
        last = task.updated_at if task.updated_at is not None else task.started_at
        if task.status != "running" or task.id in self._running \
                or broker.wall_now() - last < RUNNER_GONE_AFTER_MS:
            return task
        stopped = replace(task, status="failed", finished_at=broker.wall_now(), error=(
            f"Its runner stopped after moving {task.moved} of {task.to_move} (the server "
            "running it exited); start the redrive again to move the rest."))
        if not await broker.storage.move_task_update(stopped):
            found = await broker.storage.move_task_get(task.id)  # ended meanwhile
            return found or stopped
        log.warning("move task %s had lost its runner; marked failed", task.id)
        return stopped

    async def list(self, queue_name: str, region: str | None = None) -> list[MoveTask]:
        """Tasks whose source is this queue, newest first."""
        source = await self._broker.queue(queue_name, region)
        return [await self._lapse(t) for t in await self._broker.storage.move_task_list(
            source.id)]

    async def cancel(self, task_id: str) -> MoveTask:
        """Stop a running task after its current batch; moved messages stay moved."""
        task = await self.get(task_id)
        if task.status != "running":
            raise Conflict(f"Task {task_id!r} is {task.status}, not running.")
        task = replace(task, status="cancelled", finished_at=self._broker.wall_now())
        await self._broker.storage.move_task_update(task)
        return task

    async def close(self) -> None:
        """Stop this node's runners (their tasks stay `running` in the database)."""
        for runner in list(self._running.values()):
            await stop_task(runner)
