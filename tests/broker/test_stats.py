"""Queue stats: visible, in flight, delayed, oldest age, dead letters."""

from __future__ import annotations

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.models import QueueStats
from tests.support.messages import send


async def test_empty_queue(broker: Broker) -> None:
    await broker.create_queue("q")
    assert await broker.queue_stats("q") == QueueStats(0, 0, 0, None, 0)


async def test_counts_follow_messages(broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("q", {"visibility_timeout": 30})
    await send(broker, "q", "a", "b", "c")
    await send(broker, "q", "d", "e", delay_seconds=60)
    clock.advance(10)
    [_m] = await broker.receive("q", max_messages=1)
    stats = await broker.queue_stats("q")
    assert (stats.visible, stats.in_flight, stats.delayed) == (2, 1, 2)
    assert stats.total == 5
    assert stats.oldest_age_seconds == 10.0
    assert stats.dead_letters == 0
    clock.advance(30)  # the lease ended
    stats = await broker.queue_stats("q")
    assert (stats.visible, stats.in_flight, stats.delayed) == (3, 0, 2)
    clock.advance(20)  # the delay ended
    stats = await broker.queue_stats("q")
    assert (stats.visible, stats.in_flight, stats.delayed) == (5, 0, 0)
    assert stats.oldest_age_seconds == 60.0


async def test_deletes_and_releases_update_counts(broker: Broker) -> None:
    from conveyor.models import VisibilityEntry

    await broker.create_queue("q")
    await send(broker, "q", "a", "b")
    got = await broker.receive("q")
    await broker.delete("q", [got[0].receipt_handle])
    assert (await broker.queue_stats("q")).in_flight == 1
    await broker.change_visibility("q", [VisibilityEntry(got[1].receipt_handle, 0)])
    stats = await broker.queue_stats("q")
    assert (stats.visible, stats.in_flight, stats.total) == (1, 0, 1)


async def test_oldest_age_is_of_the_oldest_remaining(broker: Broker,
                                                     clock: ManualClock) -> None:
    await broker.create_queue("q")
    await send(broker, "q", "old")
    clock.advance(5)
    await send(broker, "q", "new")
    clock.advance(1)
    assert (await broker.queue_stats("q")).oldest_age_seconds == 6.0
    [old] = await broker.receive("q", max_messages=1)
    await broker.delete("q", [old.receipt_handle])
    assert (await broker.queue_stats("q")).oldest_age_seconds == 1.0


async def test_dead_letters_are_counted_on_the_source(broker: Broker,
                                                      clock: ManualClock) -> None:
    await broker.create_queue("dlq")
    await broker.create_queue("q", {"max_receive_count": 1, "dead_letter_queue": "dlq"})
    await send(broker, "q", "a", "b")
    await broker.receive("q", visibility_timeout=5)
    clock.advance(5)
    assert await broker.receive("q") == []
    assert (await broker.queue_stats("q")).dead_letters == 2
    dlq = await broker.queue_stats("dlq")
    assert (dlq.visible, dlq.dead_letters) == (2, 0)


async def test_all_queue_stats(broker: Broker) -> None:
    a, _ = await broker.create_queue("a")
    b, _ = await broker.create_queue("b")
    await broker.create_queue("empty")
    await send(broker, "a", "1", "2")
    await send(broker, "b", "3", delay_seconds=10)
    stats = await broker.all_queue_stats()
    assert stats[a.id].visible == 2
    assert stats[b.id].delayed == 1
    assert all(s.total == 0 for qid, s in stats.items() if qid not in (a.id, b.id))
