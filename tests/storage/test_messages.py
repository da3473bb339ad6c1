"""Conformance: messages (send, receive, delete, visibility, retry, peek, move, expiry)."""

from __future__ import annotations

from conveyor.ids import decode_receipt_handle, id_floor
from conveyor.models import Message, Queue
from conveyor.storage.base import (
    DEDUP_WINDOW_MS,
    NO_RECEIVE_LIMIT,
    Lease,
    MessageMoveParams,
    MessagePeekParams,
    MessageRetryParams,
    MessageSendParams,
    QueueUpdateParams,
    ReceiveParams,
    Storage,
)
from tests.storage.conftest import batch, make_queue, send


def receive(queue: Queue, now: int, limit: int = 10, visibility_ms: int = 30_000, *,
            max_receive_count: int = NO_RECEIVE_LIMIT, dlq: Queue | None = None
            ) -> ReceiveParams:
    return ReceiveParams(queue.id, queue.name, limit, visibility_ms, max_receive_count,
                         dlq.id if dlq else None, now, queue.attributes.fifo)


def lease(message: Message) -> Lease:
    return Lease(*decode_receipt_handle(message.receipt_handle))


async def test_send_then_receive_leases_each_message_once(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    ids = await send(storage, queue, t0, ["a", "b", "c"])
    got = await storage.message_receive(receive(queue, t0, visibility_ms=5_000))
    assert [m.id for m in got] == ids
    assert [m.body.text for m in got] == ["a", "b", "c"]
    assert all(m.receive_count == 1 and m.lease_until == t0 + 5_000 and m.sent_at == t0
               and m.first_received_at == t0 and m.queue == "q" for m in got)
    assert await storage.message_receive(receive(queue, t0 + 4_999)) == []
    again = await storage.message_receive(receive(queue, t0 + 5_000))
    assert [m.id for m in again] == ids
    assert all(m.receive_count == 2 and m.first_received_at == t0 for m in again)
    assert len({m.receipt_handle for m in got + again}) == 6  # a new handle per lease


async def test_receive_limit_and_priority_order(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    ids = await send(storage, queue, t0, ["low", "high", "mid"], priorities=[0, 9, 5])
    got = await storage.message_receive(receive(queue, t0, limit=2))
    assert [m.id for m in got] == [ids[1], ids[2]]
    assert [m.priority for m in got] == [9, 5]


async def test_delay_and_ready(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    assert not await storage.message_ready(queue.id, t0)
    await send(storage, queue, t0, ["later"], delays_ms=[1_000])
    assert not await storage.message_ready(queue.id, t0 + 999)
    assert await storage.message_receive(receive(queue, t0 + 999)) == []
    assert await storage.message_ready(queue.id, t0 + 1_000)
    paused = await storage.queue_update(QueueUpdateParams(
        queue.id, '{"paused": true}', True, t0))
    assert paused is not None and paused.attributes.paused
    assert not await storage.message_ready(queue.id, t0 + 1_000)


async def test_deduplication_within_and_across_batches(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    made = batch(t0, ["a", "b", "a2"], dedup=["x", None, "x"])
    first = await storage.message_send_many(MessageSendParams(queue.id, made, t0))
    assert [r.duplicate for r in first] == [False, False, True]
    assert first[2].id == first[0].id
    again = await storage.message_send_many(
        MessageSendParams(queue.id, batch(t0 + 1, ["a3"], dedup=["x"]), t0 + 1))
    assert again[0].duplicate and again[0].id == first[0].id
    assert (await storage.queue_stats(queue.id, t0 + 1)).visible == 2
    # Past the window, forgotten: the same id enqueues again.
    later = t0 + DEDUP_WINDOW_MS + 1
    assert await storage.dedup_expire(later, 1000) == 1
    fresh = await storage.message_send_many(
        MessageSendParams(queue.id, batch(later, ["a4"], dedup=["x"]), later))
    assert not fresh[0].duplicate and fresh[0].id != first[0].id


async def test_delete_only_current_leases(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    await send(storage, queue, t0, ["a", "b"])
    old = await storage.message_receive(receive(queue, t0, visibility_ms=1_000))
    new = await storage.message_receive(receive(queue, t0 + 1_000, limit=1))
    # a's first lease is stale (received again), b's is still current
    leases = [lease(m) for m in old]
    assert new[0].id == old[0].id
    assert await storage.message_delete_many(queue.id, leases) == {leases[1]}
    current = lease(new[0])
    assert await storage.message_delete_many(queue.id, [current]) == {current}
    assert (await storage.queue_stats(queue.id, t0 + 1_000)).total == 0
    assert await storage.message_delete_many(queue.id, [current]) == set()


async def test_change_visibility(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    await send(storage, queue, t0, ["a", "b"])
    got = await storage.message_receive(receive(queue, t0))
    a, b = lease(got[0]), lease(got[1])
    changed = await storage.message_change_visibility_many(queue.id, [(a, 0), (b, 60_000)], t0)
    assert changed == {a, b}
    again = await storage.message_receive(receive(queue, t0))
    assert [m.id for m in again] == [got[0].id]
    # a's old lease is stale now
    assert await storage.message_change_visibility_many(queue.id, [(a, 0)], t0) == set()
    stats = await storage.queue_stats(queue.id, t0)
    assert (stats.visible, stats.in_flight) == (0, 2)


async def test_retry_records_the_error_and_delays(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    [message_id] = await send(storage, queue, t0, ["a"])
    [got] = await storage.message_receive(receive(queue, t0))
    params = MessageRetryParams(queue.id, lease(got), 2_000, "boom", t0)
    assert await storage.message_retry(params)
    assert not await storage.message_retry(params)  # the lease ended
    assert await storage.message_receive(receive(queue, t0 + 1_999)) == []
    [peeked] = await storage.message_peek(MessagePeekParams(queue.id, 10, None, t0))
    assert (peeked.id, peeked.last_error, peeked.visible_at, peeked.receive_count) == (
        message_id, "boom", t0 + 2_000, 1)
    [again] = await storage.message_receive(receive(queue, t0 + 2_000))
    assert again.receive_count == 2 and again.last_error == "boom"


async def test_peek_pages_by_id(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    ids = await send(storage, queue, t0, [str(i) for i in range(5)])
    first = await storage.message_peek(MessagePeekParams(queue.id, 2, None, t0))
    rest = await storage.message_peek(MessagePeekParams(queue.id, 10, first[-1].id, t0))
    assert [p.id for p in first + rest] == ids
    assert [p.body.text for p in rest] == ["2", "3", "4"]
    assert all(p.receive_count == 0 and p.source_queue is None for p in first + rest)


async def test_dead_letter_then_move_back(storage: Storage, t0: int) -> None:
    dlq = await make_queue(storage, "dlq", t0)
    queue = await make_queue(storage, "q", t0)
    [message_id] = await send(storage, queue, t0, ["a"])
    params = receive(queue, t0, visibility_ms=1_000, max_receive_count=1, dlq=dlq)
    assert len(await storage.message_receive(params)) == 1
    later = receive(queue, t0 + 1_000, max_receive_count=1, dlq=dlq)
    assert await storage.message_receive(later) == []  # over the limit: dead-lettered
    assert (await storage.queue_stats(queue.id, t0 + 1_000)).dead_letters == 1
    [dead] = await storage.message_peek(MessagePeekParams(dlq.id, 10, None, t0 + 1_000))
    assert (dead.id, dead.source_queue) == (message_id, "q")
    assert await storage.message_count_movable(dlq.id, t0 + 1_000) == 1
    assert await storage.message_move(MessageMoveParams(dlq.id, None, 10, t0 + 1_000)) == 1
    [back] = await storage.message_receive(receive(queue, t0 + 1_000))
    assert (back.id, back.receive_count) == (message_id, 1)  # receive count reset
    assert await storage.message_count_movable(dlq.id, t0 + 1_000) == 0


async def test_move_by_id_out_of_a_dead_letter_queue(storage: Storage, t0: int) -> None:
    dlq = await make_queue(storage, "dlq", t0)
    queue = await make_queue(storage, "q", t0)
    first, second = await send(storage, queue, t0, ["a", "b"])
    for at in (t0, t0 + 1_000):
        await storage.message_receive(receive(queue, at, visibility_ms=1_000,
                                              max_receive_count=1, dlq=dlq))
    assert (await storage.queue_stats(dlq.id, t0 + 1_000)).visible == 2
    # Only the named one moves; an id not in the queue (or already moved) is left out.
    missing = "00000000-0000-7000-8000-000000000000"
    moved = await storage.message_move_ids(dlq.id, queue.id, [second, missing], t0 + 1_000)
    assert moved == [second]
    assert await storage.message_move_ids(dlq.id, queue.id, [second], t0 + 1_000) == []
    [back] = await storage.message_receive(receive(queue, t0 + 1_000))
    assert (back.id, back.receive_count) == (second, 1)  # receive count reset
    [still] = await storage.message_peek(MessagePeekParams(dlq.id, 10, None, t0 + 1_000))
    assert still.id == first
    # Deleting by id: the one named goes, unless it is in flight.
    assert await storage.message_delete_ids(dlq.id, [first, missing], t0 + 1_000) == [first]
    assert await storage.message_peek(MessagePeekParams(dlq.id, 10, None, t0 + 1_000)) == []
    assert await storage.message_delete_ids(queue.id, [second], t0 + 1_000) == []  # leased


async def test_move_to_a_named_queue(storage: Storage, t0: int) -> None:
    dlq = await make_queue(storage, "dlq", t0)
    queue = await make_queue(storage, "q", t0)
    other = await make_queue(storage, "other", t0)
    await send(storage, queue, t0, ["a", "b"])
    for at in (t0, t0 + 1_000):
        await storage.message_receive(receive(queue, at, visibility_ms=1_000,
                                              max_receive_count=1, dlq=dlq))
    assert await storage.message_move(MessageMoveParams(dlq.id, other.id, 1, t0 + 1_000)) == 1
    assert await storage.message_move(MessageMoveParams(dlq.id, other.id, 5, t0 + 1_000)) == 1
    assert (await storage.queue_stats(other.id, t0 + 1_000)).visible == 2


async def test_expire_by_id(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    await send(storage, queue, t0, ["old", "old"])
    await send(storage, queue, t0 + 10_000, ["new"])
    assert await storage.message_expire(queue.id, id_floor(t0 + 5_000), 1) == 1
    assert await storage.message_expire(queue.id, id_floor(t0 + 5_000), 10) == 1
    [left] = await storage.message_peek(MessagePeekParams(queue.id, 10, None, t0))
    assert left.body.text == "new"


async def test_stats_count_each_state(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    await send(storage, queue, t0, ["a", "b", "c"])
    await send(storage, queue, t0 + 1_000, ["d"], delays_ms=[60_000])
    await storage.message_receive(receive(queue, t0 + 2_000, limit=1))
    stats = await storage.queue_stats(queue.id, t0 + 3_000)
    assert (stats.visible, stats.in_flight, stats.delayed) == (2, 1, 1)
    assert stats.oldest_age_seconds == 3.0
    every = await storage.queue_stats_all("us-east-1", t0 + 3_000)
    assert every[queue.id] == stats


async def test_fifo_sequence_and_group_order(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q.fifo", t0)
    made = batch(t0, ["a1", "b1", "a2"], groups=["a", "b", "a"])
    results = await storage.message_send_many(MessageSendParams(queue.id, made, t0, True))
    sequences = [int(r.sequence_number or 0) for r in results]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    more = await storage.message_send_many(
        MessageSendParams(queue.id, batch(t0, ["b2"], groups=["b"]), t0, True))
    assert int(more[0].sequence_number or 0) > sequences[-1]
    [first] = await storage.message_receive(receive(queue, t0, limit=1))
    assert first.body.text == "a1" and first.sequence_number == results[0].sequence_number
    # Group a is held back while a1 is in flight; b goes on in order.
    got = await storage.message_receive(receive(queue, t0, limit=10))
    assert [m.body.text for m in got] == ["b1", "b2"]


async def test_fifo_dead_letters_over_the_receive_limit(storage: Storage, t0: int) -> None:
    dlq = await make_queue(storage, "dlq.fifo", t0)
    queue = await make_queue(storage, "q.fifo", t0)
    await storage.message_send_many(MessageSendParams(
        queue.id, batch(t0, ["a1", "a2"], groups=["a", "a"]), t0, True))
    params = receive(queue, t0, limit=1, visibility_ms=1_000, max_receive_count=1, dlq=dlq)
    assert [m.body.text for m in await storage.message_receive(params)] == ["a1"]
    later = receive(queue, t0 + 1_000, limit=1, max_receive_count=1, dlq=dlq)
    assert [m.body.text for m in await storage.message_receive(later)] == ["a2"]
    assert [p.body.text for p in await storage.message_peek(
        MessagePeekParams(dlq.id, 10, None, t0 + 1_000))] == ["a1"]


async def test_count_movable_with_a_destination_counts_every_message(storage: Storage,
                                                                      t0: int) -> None:
    dlq = await make_queue(storage, "dlq", t0)
    other = await make_queue(storage, "other", t0)
    await send(storage, dlq, t0, ["sent straight", "here too"])  # no source queue
    assert await storage.message_count_movable(dlq.id, t0) == 0  # nowhere to go back to
    assert await storage.message_count_movable(dlq.id, t0, other.id) == 2
    assert await storage.message_move(MessageMoveParams(dlq.id, other.id, 10, t0)) == 2


async def test_delete_leased_by_id(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    first, second = await send(storage, queue, t0, ["a", "b"])
    assert not await storage.message_delete_leased(queue.id, first, t0)  # not leased yet
    got = await storage.message_receive(receive(queue, t0, visibility_ms=1_000))
    leases = {m.id: lease(m) for m in got}
    assert await storage.message_delete_leased(queue.id, first, t0 + 999)
    assert not await storage.message_delete_leased(queue.id, first, t0 + 999)  # gone
    assert not await storage.message_delete_leased(queue.id, second, t0 + 1_000)  # expired
    [again] = await storage.message_receive(receive(queue, t0 + 1_000, visibility_ms=1_000))
    old = leases[second].token
    assert not await storage.message_delete_leased(queue.id, second, t0 + 1_500, old)
    assert await storage.message_delete_leased(queue.id, second, t0 + 1_500,
                                               lease(again).token)
    assert (await storage.queue_stats(queue.id, t0 + 1_500)).total == 0


async def test_over_received_rows_in_a_row_are_never_leased(storage: Storage,
                                                             t0: int) -> None:
    """Three over-received messages at the head and one fresh behind them: receives of one
    never lease an over-received message (SQLite once leased the second of two in a row:
    the check saw only the first `limit` rows, the claim the next ones); all three are
    dead-lettered and the fresh one leased (PostgreSQL may answer an empty receive first)."""
    dlq = await make_queue(storage, "dlq", t0)
    queue = await make_queue(storage, "q", t0)
    await send(storage, queue, t0, ["a", "b", "c"])
    got = await storage.message_receive(receive(queue, t0, visibility_ms=1_000))
    assert len(got) == 3
    [fresh] = await send(storage, queue, t0 + 2_000, ["d"])
    params = receive(queue, t0 + 2_000, limit=1, max_receive_count=1, dlq=dlq)
    taken: list[Message] = []
    for _ in range(4):
        taken += await storage.message_receive(params)
    assert [(m.id, m.receive_count) for m in taken] == [(fresh, 1)]
    assert (await storage.queue_stats(queue.id, t0 + 2_000)).dead_letters == 3


async def test_retry_into_the_dead_letter_queue(storage: Storage, t0: int) -> None:
    dlq = await make_queue(storage, "dlq", t0)
    queue = await make_queue(storage, "q", t0)
    [message_id] = await send(storage, queue, t0, ["a"])
    [got] = await storage.message_receive(receive(queue, t0))
    assert await storage.message_retry(
        MessageRetryParams(queue.id, lease(got), 0, "no such task", t0, dlq.id))
    assert (await storage.queue_stats(queue.id, t0)).total == 0
    [dead] = await storage.message_peek(MessagePeekParams(dlq.id, 10, None, t0))
    assert (dead.id, dead.last_error, dead.source_queue) == (message_id, "no such task", "q")
    assert await storage.message_move(MessageMoveParams(dlq.id, None, 10, t0)) == 1


async def test_fifo_receive_pages_past_a_held_back_group(storage: Storage, t0: int) -> None:
    """A whole page of rows held back (their group is in flight) must not hide a
    deliverable row on the next page (fifo.Paging, both dialects)."""
    queue = await make_queue(storage, "q.fifo", t0)
    await storage.message_send_many(MessageSendParams(
        queue.id, batch(t0, ["a0"], groups=["a"]), t0, True))
    [first] = await storage.message_receive(receive(queue, t0, limit=1))
    assert first.body.text == "a0"
    held = [f"a{i}" for i in range(1, 1001)]
    await storage.message_send_many(MessageSendParams(
        queue.id, batch(t0, held, groups=["a"] * len(held)), t0, True))
    await storage.message_send_many(MessageSendParams(
        queue.id, batch(t0, ["b0"], groups=["b"]), t0, True))
    got = await storage.message_receive(receive(queue, t0, limit=10))
    assert [m.body.text for m in got] == ["b0"]
