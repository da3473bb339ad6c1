"""Send and receive: bodies, attributes, priority, delays, batches and bad input."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import (
    EmptyBatch,
    InvalidInput,
    InvalidMessage,
    MessageTooLarge,
    TooManyEntries,
)
from conveyor.models import Body, BodyKind, MessageAttribute, SendEntry
from tests.support.messages import bodies, entry, receive_all, send


@pytest.fixture
async def q(broker: Broker) -> str:
    await broker.create_queue("q")
    return "q"


BODIES: list[Any] = [
    "plain text",
    '{"a":1}',  # a string that looks like JSON stays a string
    {"a": 1},
    [1, "two", None, 3.5, True],
    {"nested": {"list": [{"x": "y"}], "unicode": "žluťoučký kůň 🐎", "empty": {}}},
    42,
    -7.25,
    True,
    False,
    None,
    "0",
    "null",
    "true",
    '"quoted"',
    "  spaces and\ttabs\r\nnewlines  ",
    "emoji 🎉 and CJK 漢字 and RTL שלום",
    "\ufffd\U0010ffff",
    2**63 - 1,
    -(2**63),
    "x" * 100_000,
]


async def test_round_trip_keeps_exact_bodies_and_kinds(broker: Broker, q: str) -> None:
    ids = await send(broker, q, *BODIES)
    assert len(set(ids)) == len(BODIES)
    got = await receive_all(broker, q)
    by_id = {m.id: m for m in got}
    assert set(by_id) == set(ids)
    for message_id, sent in zip(ids, BODIES):
        message = by_id[message_id]
        value = message.body.value()
        assert value == sent and type(value) is type(sent), (sent, value)
        expected_kind = BodyKind.TEXT if isinstance(sent, str) else BodyKind.JSON
        assert message.body.kind is expected_kind


async def test_json_string_and_json_object_stay_different(broker: Broker, q: str) -> None:
    text_id, object_id = await send(broker, q, '{"a":1}', {"a": 1})
    got = {m.id: m for m in await receive_all(broker, q)}
    assert got[text_id].body == Body('{"a":1}', BodyKind.TEXT)
    assert got[text_id].body.value() == '{"a":1}'
    assert got[object_id].body.kind is BodyKind.JSON
    assert got[object_id].body.value() == {"a": 1}


async def test_received_message_fields(broker: Broker, q: str, clock: ManualClock) -> None:
    sent_at = clock()
    [message_id] = await send(broker, q, "hello", priority=3, group_id="g-1")
    clock.advance(2)
    [message] = await broker.receive(q, visibility_timeout=45)
    assert message.id == message_id
    assert message.queue == q
    assert message.receive_count == 1
    assert message.sent_at == sent_at
    assert message.first_received_at == sent_at + 2000
    assert message.lease_until == sent_at + 2000 + 45_000
    assert message.priority == 3
    assert message.group_id == "g-1"
    assert message.deduplication_id is None
    assert message.last_error is None
    assert message.receipt_handle


async def test_typed_attributes_round_trip(broker: Broker, q: str) -> None:
    raw = bytes(range(256))
    attributes = {
        "text": MessageAttribute("String", "héllo ✓"),
        "count": MessageAttribute("Number", "-12.5e3"),
        "blob": MessageAttribute("Binary", raw),
        "custom": MessageAttribute("Number.int", "7"),
        "empty_binary": MessageAttribute("Binary", b"\x00"),
    }
    await broker.send(q, [SendEntry(Body.of("x"), attributes=attributes)])
    [message] = await broker.receive(q)
    assert dict(message.attributes) == attributes
    assert message.attributes["blob"].value == raw
    assert message.attributes["blob"].to_json() == {
        "type": "Binary", "value": base64.b64encode(raw).decode()}


async def test_messages_without_attributes_have_none(broker: Broker, q: str) -> None:
    await send(broker, q, "x")
    [message] = await broker.receive(q)
    assert dict(message.attributes) == {}


async def test_priority_higher_first(broker: Broker, q: str, clock: ManualClock) -> None:
    await send(broker, q, "p0-first", priority=0)
    clock.advance(0.001)
    await send(broker, q, "p9", priority=9)
    clock.advance(0.001)
    await send(broker, q, "p5", priority=5)
    clock.advance(0.001)
    await send(broker, q, "p0-second", priority=0)
    clock.advance(0.001)
    await send(broker, q, "p9-later", priority=9)
    order = []
    while batch := await broker.receive(q, max_messages=1):
        order += bodies(batch)
    assert order == ["p9", "p9-later", "p5", "p0-first", "p0-second"]


async def test_priority_orders_a_batch_receive(broker: Broker, q: str) -> None:
    await broker.send(q, [entry(f"p{p}", priority=p) for p in (0, 3, 9, 1, 9, 0, 5)])
    got = await broker.receive(q, max_messages=3)
    assert sorted(m.priority for m in got) == [5, 9, 9]


async def test_fifo_within_a_priority(broker: Broker, q: str, clock: ManualClock) -> None:
    for i in range(20):
        await send(broker, q, i)
        clock.advance(0.001)
    order = []
    while batch := await broker.receive(q, max_messages=3):
        order += bodies(batch)
    assert order == list(range(20))


async def test_delayed_message_is_invisible_until_due(broker: Broker, q: str,
                                                      clock: ManualClock) -> None:
    await send(broker, q, "later", delay_seconds=10)
    await send(broker, q, "now")
    assert bodies(await broker.receive(q)) == ["now"]
    clock.advance(9.999)
    assert await broker.receive(q) == []
    clock.advance(0.001)
    assert bodies(await broker.receive(q)) == ["later"]


async def test_queue_delay_is_the_default(broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("slow", {"delay_seconds": 30})
    await send(broker, "slow", "default delay")
    await send(broker, "slow", "no delay", delay_seconds=0)
    assert bodies(await broker.receive("slow", visibility_timeout=3600)) == ["no delay"]
    clock.advance(29)
    assert await broker.receive("slow") == []
    clock.advance(1)
    assert bodies(await broker.receive("slow")) == ["default delay"]


async def test_long_native_delay_up_to_retention(broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("sched", {"retention_seconds": 7 * 86400})
    await send(broker, "sched", "in six days", delay_seconds=6 * 86400)
    clock.advance(6 * 86400 - 1)
    assert await broker.receive("sched") == []
    clock.advance(1)
    assert bodies(await broker.receive("sched")) == ["in six days"]
    with pytest.raises(InvalidMessage):
        await send(broker, "sched", "too late", delay_seconds=7 * 86400 + 1)


async def test_receive_max_messages(broker: Broker, q: str) -> None:
    await broker.send(q, [entry(i) for i in range(25)])
    assert len(await broker.receive(q)) == 10  # the default
    assert len(await broker.receive(q, max_messages=1)) == 1
    assert len(await broker.receive(q, max_messages=1000)) == 14
    assert await broker.receive(q, max_messages=1000) == []


async def test_batch_of_1000(broker: Broker, q: str) -> None:
    results = await broker.send(q, [entry({"i": i}) for i in range(1000)])
    assert len({r.id for r in results}) == 1000
    got = await broker.receive(q, max_messages=1000)
    assert sorted(m.body.value()["i"] for m in got) == list(range(1000))


async def test_batch_is_all_or_nothing_and_names_the_bad_index(broker: Broker, q: str) -> None:
    batch = [entry("ok"), entry("ok too"), entry("bad", priority=10), entry("ok three")]
    with pytest.raises(InvalidMessage) as caught:
        await broker.send(q, batch)
    assert caught.value.index == 2
    assert "priority" in caught.value.message
    assert (await broker.queue_stats(q)).total == 0
    assert await broker.receive(q) == []


async def test_oversize_body_names_the_bad_index(broker: Broker) -> None:
    await broker.create_queue("small", {"max_message_bytes": 1024})
    with pytest.raises(MessageTooLarge) as caught:
        await broker.send("small", [entry("a"), entry("é" * 513)])  # 1026 bytes
    assert caught.value.index == 1
    assert (await broker.queue_stats("small")).total == 0
    await broker.send("small", [entry("a" * 1024)])  # exactly the limit
    assert (await broker.queue_stats("small")).visible == 1


async def test_attributes_count_towards_size(broker: Broker) -> None:
    await broker.create_queue("small", {"max_message_bytes": 1024})
    big = {"blob": MessageAttribute("Binary", b"\x01" * 1000)}
    with pytest.raises(MessageTooLarge):
        await broker.send("small", [SendEntry(Body.of("x" * 100), attributes=big)])


async def test_default_limit_is_one_mebibyte(broker: Broker, q: str) -> None:
    await send(broker, q, "x" * 1_048_576)
    [message] = await broker.receive(q)
    assert len(message.body.value()) == 1_048_576
    with pytest.raises(MessageTooLarge):
        await send(broker, q, "x" * 1_048_577)


async def test_empty_and_oversize_batches(broker: Broker, q: str) -> None:
    with pytest.raises(EmptyBatch):
        await broker.send(q, [])
    with pytest.raises(TooManyEntries):
        await broker.send(q, [entry(i) for i in range(1001)])
    assert (await broker.queue_stats(q)).total == 0


def _attr(type_: str, value: Any) -> dict[str, MessageAttribute]:
    return {"a": MessageAttribute(type_, value)}


BAD_ENTRIES: list[tuple[str, SendEntry]] = [
    ("empty text", SendEntry(Body("", BodyKind.TEXT))),
    ("NUL", SendEntry(Body.of("nul \x00 inside"))),
    ("control char", SendEntry(Body.of("bell \x07"))),
    ("lone surrogate", SendEntry(Body.of("\ud800"))),
    ("lone surrogate in JSON", SendEntry(Body.of({"k": ["\udfff"]}))),
    ("U+FFFE", SendEntry(Body.of("\ufffe"))),
    ("priority -1", SendEntry(Body.of("x"), priority=-1)),
    ("priority 10", SendEntry(Body.of("x"), priority=10)),
    ("priority bool", SendEntry(Body.of("x"), priority=True)),
    ("priority str", SendEntry(Body.of("x"), priority="1")),  # type: ignore[arg-type]
    ("delay -1", SendEntry(Body.of("x"), delay_seconds=-1)),
    ("delay past retention", SendEntry(Body.of("x"), delay_seconds=345_601)),
    ("delay str", SendEntry(Body.of("x"), delay_seconds="5")),  # type: ignore[arg-type]
    ("dedup empty", SendEntry(Body.of("x"), deduplication_id="")),
    ("dedup space", SendEntry(Body.of("x"), deduplication_id="a b")),
    ("dedup long", SendEntry(Body.of("x"), deduplication_id="d" * 129)),
    ("group non-ascii", SendEntry(Body.of("x"), group_id="grüppe")),
    ("11 attributes", SendEntry(Body.of("x"), attributes={
        f"a{i}": MessageAttribute("String", "v") for i in range(11)})),
    ("attr type", SendEntry(Body.of("x"), attributes=_attr("Text", "v"))),
    ("attr number", SendEntry(Body.of("x"), attributes=_attr("Number", "twelve"))),
    ("attr binary str", SendEntry(Body.of("x"), attributes=_attr("Binary", "not bytes"))),
    ("attr string bytes", SendEntry(Body.of("x"), attributes=_attr("String", b"bytes"))),
    ("attr NUL", SendEntry(Body.of("x"), attributes=_attr("String", "a\x00"))),
    ("attr name aws.", SendEntry(Body.of("x"), attributes={
        "AWS.x": MessageAttribute("String", "v")})),
    ("attr name space", SendEntry(Body.of("x"), attributes={
        "a b": MessageAttribute("String", "v")})),
    ("attr name dots", SendEntry(Body.of("x"), attributes={
        "a..b": MessageAttribute("String", "v")})),
]


async def test_bad_entries_are_rejected_whole(broker: Broker, q: str) -> None:
    for why, bad in BAD_ENTRIES:
        with pytest.raises(InvalidMessage) as caught:
            await broker.send(q, [entry("fine"), bad])
        assert caught.value.index == 1, why
    assert (await broker.queue_stats(q)).total == 0


GOOD_ENTRIES: list[tuple[str, SendEntry]] = [
    ("tab newline cr", SendEntry(Body.of("\t\n\r"))),
    ("top of BMP", SendEntry(Body.of("\ud7ff\ue000\ufffd"))),
    ("astral", SendEntry(Body.of("\U00010000\U0010ffff"))),
    ("json with NUL escaped", SendEntry(Body.of({"k": "nul \x00 in json"}))),
    ("priority 9", SendEntry(Body.of("x"), priority=9)),
    ("dedup printable", SendEntry(Body.of("x"), deduplication_id="!~" + "d" * 126)),
    ("10 attributes", SendEntry(Body.of("x"), attributes={
        f"a{i}": MessageAttribute("String", "v") for i in range(10)})),
]


async def test_edge_entries_are_accepted(broker: Broker, q: str) -> None:
    for why, good in GOOD_ENTRIES:
        await broker.send(q, [good])
        [message] = await broker.receive(q)
        assert message.body == good.body, why
        assert dict(message.attributes) == dict(good.attributes), why


BAD_RECEIVES: list[dict[str, Any]] = [
    {"max_messages": 0}, {"max_messages": 1001}, {"max_messages": True},
    {"visibility_timeout": -1}, {"visibility_timeout": 43_201},
    {"wait_seconds": -1}, {"wait_seconds": 21}, {"wait_seconds": 1.5},
]


async def test_bad_receive_arguments(broker: Broker, q: str) -> None:
    for kwargs in BAD_RECEIVES:
        with pytest.raises(InvalidInput):
            await broker.receive(q, **kwargs)


async def test_peek_does_not_lease(broker: Broker, q: str) -> None:
    ids = await send(broker, q, "a", "b", "c")
    peeked = await broker.peek(q)
    assert [p.id for p in peeked] == ids
    assert [p.body.value() for p in peeked] == ["a", "b", "c"]
    assert [p.receive_count for p in peeked] == [0, 0, 0]
    assert [p.id for p in await broker.peek(q, limit=1, after=ids[0])] == [ids[1]]
    assert len(await broker.receive(q)) == 3


@pytest.mark.parametrize("after", ["½8﹙U\x11", "not-a-uuid", "", "0" * 31])
async def test_peek_after_something_not_a_message_id_is_refused(broker: Broker, q: str,
                                                                after: str) -> None:
    await send(broker, q, "a")
    with pytest.raises(InvalidInput, match="after must be a message id"):
        await broker.peek(q, after=after)


async def test_peek_after_an_upper_case_id_pages_the_same(broker: Broker, q: str) -> None:
    ids = await send(broker, q, "a", "b")
    assert [p.id for p in await broker.peek(q, after=ids[0].upper())] == [ids[1]]
