"""Dead-lettering after max_receive_count, and redrive back to the source."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import Conflict, InvalidInput, QueueNotFound, TaskNotFound
from tests.support.messages import bodies, entry, receive_all, send


@pytest.fixture
async def source(broker: Broker) -> str:
    await broker.create_queue("dlq")
    await broker.create_queue("work", {"max_receive_count": 3, "dead_letter_queue": "dlq",
                                       "visibility_timeout": 10})
    return "work"


async def _fail_times(broker: Broker, queue: str, clock: ManualClock, times: int) -> None:
    for attempt in range(1, times + 1):
        [m] = await broker.receive(queue)
        assert m.receive_count == attempt
        clock.advance(10)


async def test_delivered_exactly_max_receive_count_times(broker: Broker, source: str,
                                                         clock: ManualClock) -> None:
    [message_id] = await send(broker, source, {"job": 1})
    await _fail_times(broker, source, clock, 3)
    # the fourth attempt moves it instead of delivering it
    assert await broker.receive(source) == []
    stats = await broker.queue_stats(source)
    assert (stats.visible, stats.in_flight, stats.delayed) == (0, 0, 0)
    assert stats.dead_letters == 1
    assert (await broker.queue_stats("dlq")).visible == 1
    [dead] = await broker.receive("dlq")
    assert dead.id == message_id
    assert dead.body.value() == {"job": 1}
    peeked = await broker.peek("dlq")
    assert [p.source_queue for p in peeked] == ["work"]


async def test_dead_lettering_does_not_hold_back_others(broker: Broker, source: str,
                                                        clock: ManualClock) -> None:
    await send(broker, source, "poison")
    await _fail_times(broker, source, clock, 3)
    await send(broker, source, "fine")
    assert bodies(await broker.receive(source)) == ["fine"]
    assert bodies(await receive_all(broker, "dlq")) == ["poison"]


async def test_max_receive_count_one(broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("dlq")
    await broker.create_queue("once", {"max_receive_count": 1, "dead_letter_queue": "dlq"})
    await send(broker, "once", "x")
    assert len(await broker.receive("once", visibility_timeout=1)) == 1
    clock.advance(1)
    assert await broker.receive("once") == []
    assert (await broker.queue_stats("dlq")).visible == 1


async def test_released_receives_count_too(broker: Broker, source: str) -> None:
    """A nack (visibility 0) is a receive like any other."""
    from conveyor.models import VisibilityEntry

    await send(broker, source, "x")
    for _ in range(3):
        [m] = await broker.receive(source)
        await broker.change_visibility(source, [VisibilityEntry(m.receipt_handle, 0)])
    assert await broker.receive(source) == []
    assert (await broker.queue_stats(source)).dead_letters == 1


async def test_redrive_moves_back_with_counts_reset(broker: Broker, source: str,
                                                    clock: ManualClock) -> None:
    ids = await send(broker, source, "a", "b")
    for _ in range(3):
        assert len(await broker.receive(source)) == 2
        clock.advance(10)
    assert await broker.receive(source) == []
    assert (await broker.queue_stats("dlq")).visible == 2
    task = await broker.start_redrive("dlq", wait=10)
    assert task.status == "completed"
    assert (task.moved, task.to_move) == (2, 2)
    assert task.source_queue == "dlq" and task.destination_queue is None
    assert (await broker.queue_stats("dlq")).total == 0
    assert (await broker.queue_stats(source)).dead_letters == 0
    back = await broker.receive(source)
    assert sorted(m.id for m in back) == sorted(ids)
    assert [m.receive_count for m in back] == [1, 1]
    # and they get their full max_receive_count again
    for count in (2, 3):
        clock.advance(10)
        assert [m.receive_count for m in await broker.receive(source)] == [count, count]
    clock.advance(10)
    assert await broker.receive(source) == []
    assert (await broker.queue_stats(source)).dead_letters == 2
    assert (await broker.redrive.get(task.id)).status == "completed"
    assert [t.id for t in await broker.redrive.list("dlq")] == [task.id]


async def test_redrive_to_a_named_destination(broker: Broker, source: str,
                                              clock: ManualClock) -> None:
    await broker.create_queue("elsewhere")
    await send(broker, source, "x")
    await _fail_times(broker, source, clock, 3)
    await broker.receive(source)
    task = await broker.start_redrive("dlq", destination="elsewhere", wait=10)
    assert task.status == "completed" and task.moved == 1
    [m] = await broker.receive("elsewhere")
    assert m.body.value() == "x" and m.receive_count == 1
    assert await broker.receive(source) == []


async def test_redrive_skips_messages_in_flight_in_the_dlq(broker: Broker, source: str,
                                                           clock: ManualClock) -> None:
    await send(broker, source, "x")
    await _fail_times(broker, source, clock, 3)
    await broker.receive(source)
    [_leased] = await broker.receive("dlq", visibility_timeout=600)
    task = await broker.start_redrive("dlq", wait=10)
    assert task.moved == 0
    assert (await broker.queue_stats("dlq")).in_flight == 1


async def test_redrive_can_be_cancelled(broker: Broker, source: str,
                                        clock: ManualClock) -> None:
    await broker.send(source, [entry(i) for i in range(6)])
    for _ in range(4):
        await broker.receive(source, max_messages=10)
        clock.advance(10)
    assert (await broker.queue_stats("dlq")).visible == 6
    task = await broker.start_redrive("dlq", max_per_second=2, wait=0)
    assert task.status == "running"
    with pytest.raises(Conflict):
        await broker.start_redrive("dlq", wait=0)
    for _ in range(100):  # the first batch of 2 goes at once; then the runner paces itself
        if (await broker.redrive.get(task.id)).moved:
            break
        await asyncio.sleep(0.01)
    cancelled = await broker.redrive.cancel(task.id)
    assert cancelled.status == "cancelled"
    left = (await broker.queue_stats("dlq")).visible
    assert left == 6 - cancelled.moved
    # Wait for the runner itself to end (it sees the cancel when its next batch is due),
    # rather than sleeping past that moment and hoping.
    runner = broker.redrive._running.get(task.id)
    if runner is not None:
        await asyncio.wait_for(runner, 5)
    after = await broker.redrive.get(task.id)
    assert after.status == "cancelled"
    # nothing moves once the cancel has returned, and the task's count stays true
    assert (await broker.queue_stats("dlq")).visible == left
    assert after.moved == 6 - left
    with pytest.raises(Conflict):
        await broker.redrive.cancel(task.id)
    # a new task may start once the old one is over
    done = await broker.start_redrive("dlq", wait=10)
    assert done.status == "completed" and done.moved == left


async def test_redrive_bad_input(broker: Broker, source: str) -> None:
    with pytest.raises(QueueNotFound):
        await broker.start_redrive("missing")
    with pytest.raises(QueueNotFound):
        await broker.start_redrive("dlq", destination="missing")
    for bad in (0, 501, True):
        with pytest.raises(InvalidInput):
            await broker.start_redrive("dlq", max_per_second=bad)
    with pytest.raises(TaskNotFound):
        await broker.redrive.get("00000000-0000-0000-0000-000000000000")
    with pytest.raises(TaskNotFound):
        await broker.redrive.cancel("nope")


async def test_redrive_leaves_messages_whose_source_is_gone(broker: Broker, source: str,
                                                            clock: ManualClock) -> None:
    # Another source keeps "dlq" a dead-letter queue (with none, see
    # test_redrive_refusal.py: refused, and a destination takes the orphans).
    await broker.create_queue("other", {"max_receive_count": 3, "dead_letter_queue": "dlq"})
    await send(broker, source, "orphan")
    await _fail_times(broker, source, clock, 3)
    await broker.receive(source)
    await broker.delete_queue(source)
    task = await broker.start_redrive("dlq", wait=10)
    assert task.status == "completed" and task.moved == 0
    assert (await broker.queue_stats("dlq")).visible == 1
