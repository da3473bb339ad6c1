"""Conformance: queues, move tasks and wake-ups between processes."""

from __future__ import annotations

import asyncio

from conveyor.models import MoveTask
from conveyor.storage.base import (
    MessageSendParams,
    QueueListParams,
    QueueRow,
    QueueUpdateParams,
    Storage,
)
from tests.storage.conftest import REGION, batch, make_queue, send


async def test_create_is_idempotent_by_name(storage: Storage, t0: int) -> None:
    row = QueueRow(REGION, "q", '{"visibility_timeout": 7}', False)
    made, created = await storage.queue_create(row, t0)
    again, created_again = await storage.queue_create(row, t0 + 1)
    assert created and not created_again and again.id == made.id
    assert (made.name, made.region, made.created_at, made.updated_at) == ("q", REGION, t0, t0)
    assert made.attributes.visibility_timeout == 7
    assert await storage.queue_get(REGION, "q") == made
    assert await storage.queue_get_by_id(made.id) == made
    assert await storage.queue_get(REGION, "missing") is None
    assert await storage.queue_get("eu-west-1", "q") is None
    assert await storage.queue_regions() == [REGION]


async def test_list_by_prefix_after_and_limit(storage: Storage, t0: int) -> None:
    for name in ("b", "a-2", "a-1", "B", "a_3"):
        await make_queue(storage, name, t0)
    names = [q.name for q in await storage.queue_list(QueueListParams(REGION, "", None, 10))]
    assert names == ["B", "a-1", "a-2", "a_3", "b"]  # bytewise, on both
    page = await storage.queue_list(QueueListParams(REGION, "a", None, 2))
    assert [q.name for q in page] == ["a-1", "a-2"]
    rest = await storage.queue_list(QueueListParams(REGION, "a", "a-2", 2))
    assert [q.name for q in rest] == ["a_3"]
    assert await storage.queue_list(QueueListParams("eu-west-1", "", None, 10)) == []


async def test_catalog_stamp_moves_when_a_queue_is_created_changed_or_deleted(
        storage: Storage, t0: int) -> None:
    empty = await storage.queue_catalog_stamp(REGION)
    assert empty == (0, 0)
    queue = await make_queue(storage, "q", t0)
    made = await storage.queue_catalog_stamp(REGION)
    assert made == (1, t0)
    await send(storage, queue, t0 + 1, ["a"])  # messages are not the catalog
    assert await storage.queue_catalog_stamp(REGION) == made
    assert await storage.queue_catalog_stamp("eu-west-1") == (0, 0)
    await storage.queue_update(QueueUpdateParams(queue.id, "{}", True, t0 + 2))
    assert await storage.queue_catalog_stamp(REGION) == (1, t0 + 2)
    await make_queue(storage, "r", t0 + 2)  # same millisecond: the count still moves
    assert await storage.queue_catalog_stamp(REGION) == (2, t0 + 2)
    await storage.queue_delete(queue.id)
    assert await storage.queue_catalog_stamp(REGION) == (1, t0 + 2)


async def test_update_delete_purge(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    updated = await storage.queue_update(
        QueueUpdateParams(queue.id, '{"delay_seconds": 3}', False, t0 + 5))
    assert updated is not None and updated.attributes.delay_seconds == 3
    assert updated.updated_at == t0 + 5 and updated.created_at == t0
    await send(storage, queue, t0, ["a", "b"])
    assert await storage.queue_purge(queue.id) == 2
    assert (await storage.queue_stats(queue.id, t0)).total == 0
    await send(storage, queue, t0, ["c"], dedup=["x"])
    assert await storage.queue_delete(queue.id)
    assert not await storage.queue_delete(queue.id)
    assert await storage.queue_get_by_id(queue.id) is None
    assert await storage.queue_update(
        QueueUpdateParams(queue.id, "{}", False, t0)) is None
    # The name and its deduplication ids are free again.
    fresh = await make_queue(storage, "q", t0)
    [result] = await storage.message_send_many(
        MessageSendParams(fresh.id, batch(t0, ["d"], dedup=["x"]), t0))
    assert not result.duplicate


async def test_move_tasks(storage: Storage, t0: int) -> None:
    dlq = await make_queue(storage, "dlq", t0)
    first = MoveTask("t1", "dlq", None, "running", 0, 5, None, t0, None)
    second = MoveTask("t2", "dlq", "q", "running", 0, 1, 10, t0 + 1, None)
    await storage.move_task_create(dlq.id, first)
    await storage.move_task_create(dlq.id, second)
    assert await storage.move_task_get("t1") == first
    assert await storage.move_task_get("nope") is None
    assert [t.id for t in await storage.move_task_list(dlq.id)] == ["t2", "t1"]
    progressed = MoveTask("t1", "dlq", None, "running", 3, 5, None, t0, None)
    assert await storage.move_task_update(progressed)
    cancelled = MoveTask("t1", "dlq", None, "cancelled", 3, 5, None, t0, t0 + 2)
    assert await storage.move_task_update(cancelled)
    # Ended: a late progress write from the runner must not overwrite the cancel.
    assert not await storage.move_task_update(progressed)
    assert await storage.move_task_get("t1") == cancelled


async def test_signal_reaches_another_process(storage: Storage, second: Storage,
                                              t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    heard: asyncio.Queue[int | None] = asyncio.Queue()
    await storage.listen(heard.put_nowait)
    async with asyncio.timeout(10):
        while True:  # PostgreSQL's listener says None once it is connected
            await second.signal(queue.id)
            try:
                if await asyncio.wait_for(heard.get(), 0.5) == queue.id:
                    break
            except TimeoutError:
                continue
