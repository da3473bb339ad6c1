"""Deduplication ids (a 5-minute window) and the retention sweep."""

from __future__ import annotations

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from tests.support.messages import bodies, entry, receive_all, send


async def test_repeat_within_window_returns_first_id(broker: Broker,
                                                     clock: ManualClock) -> None:
    await broker.create_queue("q")
    [first] = await broker.send("q", [entry("v1", deduplication_id="order-42")])
    assert not first.duplicate
    clock.advance(299)
    [again] = await broker.send("q", [entry("v2", deduplication_id="order-42")])
    assert again.id == first.id and again.duplicate
    assert (await broker.queue_stats("q")).visible == 1
    assert bodies(await receive_all(broker, "q")) == ["v1"]


async def test_window_holds_after_the_message_is_deleted(broker: Broker,
                                                         clock: ManualClock) -> None:
    await broker.create_queue("q")
    [first] = await send(broker, "q", "x", deduplication_id="d")
    [m] = await broker.receive("q")
    await broker.delete("q", [m.receipt_handle])
    clock.advance(60)
    [again] = await broker.send("q", [entry("x", deduplication_id="d")])
    assert again.id == first and again.duplicate
    assert (await broker.queue_stats("q")).total == 0


async def test_a_purge_ends_the_window(broker: Broker, clock: ManualClock) -> None:
    """As SQS: after PurgeQueue, a message sent again with the same id is a new one
    (kept, it would be reported sent and never delivered)."""
    await broker.create_queue("q")
    await broker.create_queue("other")
    [first] = await send(broker, "q", "v1", deduplication_id="d")
    [kept] = await send(broker, "other", "o1", deduplication_id="d")
    assert await broker.purge_queue("q") == 1
    [again] = await broker.send("q", [entry("v2", deduplication_id="d")])
    assert again.id != first and not again.duplicate
    assert bodies(await receive_all(broker, "q")) == ["v2"]
    [other] = await broker.send("other", [entry("o2", deduplication_id="d")])
    assert other.id == kept and other.duplicate  # another queue's window is its own


async def test_repeat_after_window_enqueues(broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("q")
    [first] = await send(broker, "q", "v1", deduplication_id="d")
    clock.advance(300)
    [second] = await broker.send("q", [entry("v2", deduplication_id="d")])
    assert second.id != first and not second.duplicate
    # the new send opens a new window
    clock.advance(299)
    [third] = await broker.send("q", [entry("v3", deduplication_id="d")])
    assert third.id == second.id and third.duplicate
    assert sorted(bodies(await receive_all(broker, "q"))) == ["v1", "v2"]


async def test_window_survives_the_sweep(broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("q")
    [first] = await send(broker, "q", "x", deduplication_id="d")
    clock.advance(200)
    await broker.sweep()
    [again] = await broker.send("q", [entry("x", deduplication_id="d")])
    assert again.id == first
    clock.advance(100)
    await broker.sweep()  # now the entry is forgotten
    [later] = await broker.send("q", [entry("x", deduplication_id="d")])
    assert later.id != first


async def test_duplicates_inside_one_batch(broker: Broker) -> None:
    await broker.create_queue("q")
    results = await broker.send("q", [entry("a", deduplication_id="d"), entry("b"),
                                      entry("c", deduplication_id="d")])
    assert results[2].id == results[0].id and results[2].duplicate
    assert results[1].id not in (results[0].id,)
    assert sorted(bodies(await receive_all(broker, "q"))) == ["a", "b"]


async def test_dedup_is_per_queue(broker: Broker) -> None:
    await broker.create_queue("a")
    await broker.create_queue("b")
    [in_a] = await send(broker, "a", "x", deduplication_id="same")
    [in_b] = await send(broker, "b", "x", deduplication_id="same")
    assert in_a != in_b
    assert (await broker.queue_stats("b")).visible == 1


async def test_dedup_id_is_kept_on_the_message(broker: Broker) -> None:
    await broker.create_queue("q")
    await send(broker, "q", "x", deduplication_id="abc-1")
    [m] = await broker.receive("q")
    assert m.deduplication_id == "abc-1"


async def test_a_recreated_queue_forgets_old_ids(broker: Broker) -> None:
    await broker.create_queue("q")
    [first] = await send(broker, "q", "x", deduplication_id="d")
    await broker.delete_queue("q")
    await broker.create_queue("q")
    [second] = await send(broker, "q", "x", deduplication_id="d")
    assert second != first
    assert (await broker.queue_stats("q")).visible == 1


async def test_retention_sweep_removes_expired_messages(broker: Broker,
                                                        clock: ManualClock) -> None:
    await broker.create_queue("short", {"retention_seconds": 60})
    await broker.create_queue("long", {"retention_seconds": 3600})
    await send(broker, "short", "old visible", "old in flight")
    await send(broker, "short", "old delayed", delay_seconds=50)
    await send(broker, "long", "kept")
    await broker.receive("short", max_messages=1, visibility_timeout=3600)
    clock.advance(30)
    await send(broker, "short", "younger")
    clock.advance(30)  # exactly the retention: still kept
    assert await broker.sweep() == 0
    assert (await broker.queue_stats("short")).total == 4
    clock.advance(0.001)
    assert await broker.sweep() == 3  # visible, in flight and delayed alike
    assert bodies(await receive_all(broker, "short")) == ["younger"]
    assert (await broker.queue_stats("long")).visible == 1
    clock.advance(30)
    assert await broker.sweep() == 1
    assert (await broker.queue_stats("short")).total == 0
    assert bodies(await receive_all(broker, "long")) == ["kept"]


async def test_default_retention_is_four_days(broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("q")
    await send(broker, "q", "x")
    clock.advance(4 * 86400)
    assert await broker.sweep() == 0
    clock.advance(0.001)
    assert await broker.sweep() == 1
    assert (await broker.queue_stats("q")).total == 0


async def test_sweep_clears_a_large_backlog(
        broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("q", {"retention_seconds": 60})
    for _ in range(6):
        await broker.send("q", [entry(i) for i in range(1000)])
    # (ids made in a burst of more than 4,096 a millisecond borrow the next milliseconds)
    clock.advance(61)
    assert await broker.sweep() == 6000
    assert (await broker.queue_stats("q")).total == 0
