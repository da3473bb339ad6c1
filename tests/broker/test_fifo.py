"""FIFO queues on both backends: order per group, groups held back, dedup, sequence numbers."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import InvalidAttribute, InvalidMessage, MissingParameter
from conveyor.fifo import FifoRow, choose
from conveyor.models import Body, SendEntry, VisibilityEntry
from tests.conftest import OpenBroker


def entry(text: str, group: str, dedup: str | None = None) -> SendEntry:
    return SendEntry(Body.of(text), group_id=group, deduplication_id=dedup)


@pytest.fixture
async def fifo(broker: Broker) -> str:
    await broker.create_queue("jobs.fifo", {"content_based_deduplication": True})
    return "jobs.fifo"


def test_choose_holds_a_group_behind_its_first_invisible_message() -> None:
    rows = [FifoRow("a1", "a", 1, 0), FifoRow("b1", "b", 2, 0), FifoRow("a2", "a", 3, 0),
            FifoRow("b2", "b", 4, 0)]
    assert choose({"b": 2}, rows, 10, 5).deliver == ["a1", "a2"]
    assert choose({"a": 3}, rows, 10, 5).deliver == ["a1", "b1", "b2"]
    # As SQS: as many of one group as there are before the next group's.
    assert choose({}, rows, 3, 5).deliver == ["a1", "a2", "b1"]
    assert choose({}, rows, 10, 5).deliver == ["a1", "a2", "b1", "b2"]
    dead = choose({}, [FifoRow("a1", "a", 1, 5), FifoRow("a2", "a", 2, 0)], 10, 5)
    assert dead == (["a2"], ["a1"])


async def test_fifo_name_and_attribute_agree(broker: Broker) -> None:
    with pytest.raises(InvalidAttribute):
        await broker.create_queue("plain", {"fifo": True})
    with pytest.raises(InvalidAttribute):
        await broker.create_queue("x.fifo", {"fifo": False})
    queue, _ = await broker.create_queue("y.fifo")
    assert queue.attributes.fifo


async def test_sequence_numbers_increase_in_send_order(broker: Broker, fifo: str) -> None:
    results = await broker.send(fifo, [entry(f"m{i}", "g") for i in range(5)])
    numbers = [r.sequence_number for r in results]
    assert all(n is not None and len(n) == 20 and n.isdigit() for n in numbers)
    assert numbers == sorted(numbers) and len(set(numbers)) == 5
    more = await broker.send(fifo, [entry("later", "h")])
    assert more[0].sequence_number is not None and more[0].sequence_number > numbers[-1]


async def test_order_within_a_group_and_groups_in_parallel(broker: Broker, fifo: str) -> None:
    await broker.send(fifo, [entry(f"{g}{i}", g) for i in range(3) for g in "ab"])
    first = await broker.receive(fifo, 1)
    assert [m.body.text for m in first] == ["a0"]
    # Group a is held while a0 is in flight; group b flows, in order.
    second = await broker.receive(fifo, 10)
    assert [m.body.text for m in second] == ["b0", "b1", "b2"]
    assert await broker.receive(fifo, 10) == []
    await broker.delete(fifo, [first[0].receipt_handle])
    third = await broker.receive(fifo, 10)
    assert [m.body.text for m in third] == ["a1", "a2"]
    assert all(m.sequence_number is not None for m in third)


async def test_a_batch_is_filled_group_by_group(broker: Broker, fifo: str) -> None:
    """As SQS: as many messages of one group as there are, then the next group's (the
    group whose first message is oldest first), each group in order."""
    await broker.send(fifo, [entry(body, body[:2]) for body in
                             ("g1-m1", "g2-m1", "g1-m2", "g1-m3", "g3-m1")])
    first = await broker.receive(fifo, 4)
    assert [m.body.text for m in first] == ["g1-m1", "g1-m2", "g1-m3", "g2-m1"]
    assert [m.body.text for m in await broker.receive(fifo, 10)] == ["g3-m1"]


async def test_an_expired_lease_comes_back_before_later_messages(
        broker: Broker, fifo: str, clock: ManualClock) -> None:
    await broker.send(fifo, [entry(f"m{i}", "g") for i in range(3)])
    got = await broker.receive(fifo, 1, visibility_timeout=10)
    assert [m.body.text for m in got] == ["m0"]
    clock.advance(11)
    again = await broker.receive(fifo, 10)
    assert [(m.body.text, m.receive_count) for m in again] == [("m0", 2), ("m1", 1), ("m2", 1)]


async def test_a_retried_message_keeps_its_group_waiting(
        broker: Broker, fifo: str, clock: ManualClock) -> None:
    await broker.send(fifo, [entry("first", "g"), entry("second", "g")])
    got = await broker.receive(fifo, 1)
    await broker.retry(fifo, got[0].receipt_handle, 30, "provider said 429")
    assert await broker.receive(fifo, 10) == []  # "second" must not overtake "first"
    clock.advance(31)
    assert [m.body.text for m in await broker.receive(fifo, 10)] == ["first", "second"]


async def test_release_by_visibility_zero(broker: Broker, fifo: str) -> None:
    await broker.send(fifo, [entry("x", "g"), entry("y", "g")])
    got = await broker.receive(fifo, 1)
    await broker.change_visibility(fifo, [VisibilityEntry(got[0].receipt_handle, 0)])
    assert [m.body.text for m in await broker.receive(fifo, 10)] == ["x", "y"]


async def test_deduplication_by_id_and_by_content(broker: Broker) -> None:
    await broker.create_queue("ids.fifo")
    first = await broker.send("ids.fifo", [entry("a", "g", "d1")])
    again = await broker.send("ids.fifo", [entry("different body", "g", "d1")])
    assert again[0].duplicate and again[0].id == first[0].id
    await broker.create_queue("content.fifo", {"content_based_deduplication": True})
    one = await broker.send("content.fifo", [entry("same", "g"), entry("same", "h")])
    assert one[1].duplicate and one[1].id == one[0].id
    got = await broker.receive("content.fifo", 10)
    assert [m.deduplication_id for m in got] == [hashlib.sha256(b"same").hexdigest()]
    # A duplicate is not delivered even after the first was deleted (5-minute window).
    await broker.delete("content.fifo", [got[0].receipt_handle])
    assert (await broker.send("content.fifo", [entry("same", "g")]))[0].duplicate
    assert await broker.receive("content.fifo", 10) == []


async def test_deduplication_scope_message_group(broker: Broker) -> None:
    await broker.create_queue("scoped.fifo", {"deduplication_scope": "messageGroup"})
    sent = await broker.send("scoped.fifo", [entry("a", "g1", "d"), entry("b", "g2", "d"),
                                             entry("c", "g1", "d")])
    assert [r.duplicate for r in sent] == [False, False, True]


async def test_fifo_send_rules(broker: Broker) -> None:
    await broker.create_queue("rules.fifo")
    with pytest.raises(MissingParameter) as missing:
        await broker.send("rules.fifo", [entry("ok", "g", "d"), SendEntry(Body.of("no group"),
                                                                           deduplication_id="e")])
    assert missing.value.index == 1
    with pytest.raises(InvalidMessage):  # no dedup id and no content-based deduplication
        await broker.send("rules.fifo", [entry("x", "g")])
    with pytest.raises(InvalidMessage):
        await broker.send("rules.fifo", [SendEntry(Body.of("x"), group_id="g",
                                                   deduplication_id="d", delay_seconds=5)])
    with pytest.raises(InvalidMessage):
        await broker.send("rules.fifo", [SendEntry(Body.of("x"), group_id="g",
                                                   deduplication_id="d", priority=3)])
    assert (await broker.queue_stats("rules.fifo")).total == 0


async def test_dead_letters_leave_the_group_free(broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("dlq.fifo")
    await broker.create_queue("work.fifo", {"content_based_deduplication": True,
                                            "max_receive_count": 1,
                                            "dead_letter_queue": "dlq.fifo"})
    await broker.send("work.fifo", [entry("poison", "g"), entry("next", "g")])
    assert [m.body.text for m in await broker.receive("work.fifo", 1)] == ["poison"]
    clock.advance(31)
    assert [m.body.text for m in await broker.receive("work.fifo", 10)] == ["next"]
    dead = await broker.receive("dlq.fifo", 10)
    assert [m.body.text for m in dead] == ["poison"]


async def test_concurrent_consumers_never_break_group_order(
        database_url: str, open_broker: OpenBroker) -> None:
    """Four consumers on separate connections drain 8 groups; each group's messages are
    handed out strictly in order and never two of a group at once."""
    first = await open_broker()
    await first.create_queue("race.fifo", {"content_based_deduplication": True})
    groups = [f"g{i}" for i in range(8)]
    for start in range(0, 200, 50):
        await first.send("race.fifo", [entry(f"{g}:{n}", g) for n in range(start, start + 50)
                                       for g in groups][:400])
    seen: dict[str, list[int]] = {g: [] for g in groups}
    in_flight: set[str] = set()  # groups some consumer holds a lease in
    brokers = [first] + [await open_broker() for _ in range(3)]

    async def consume(b: Broker) -> None:
        idle = 0
        while idle < 3:
            got = await b.receive("race.fifo", 5)
            if not got:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            held = {m.group_id or "" for m in got}
            assert not held & in_flight, "a group was handed to two consumers at once"
            in_flight.update(held)
            for m in got:
                group, n = m.body.text.split(":")
                seen[group].append(int(n))
            await asyncio.sleep(0)  # let the others try while we hold the leases
            # Released before the delete is sent: the next of a group can only be handed
            # out once the delete has committed, after this line.
            in_flight.difference_update(held)
            await b.delete("race.fifo", [m.receipt_handle for m in got])

    await asyncio.gather(*(consume(b) for b in brokers))
    for group in groups:
        assert seen[group] == sorted(seen[group])
        assert len(seen[group]) == len(set(seen[group]))
    assert sum(len(v) for v in seen.values()) == 1600
