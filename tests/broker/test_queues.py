"""Queues: create, get, list, update, delete, purge; attribute defaults and bounds."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.broker.broker import Broker
from conveyor.errors import (
    InvalidAttribute,
    InvalidInput,
    InvalidQueueName,
    QueueAlreadyExists,
    QueueNotFound,
    Unsupported,
)
from conveyor.models import QueueAttributes
from tests.support.messages import receive_all, send

DEFAULTS = {
    "visibility_timeout": 30,
    "delay_seconds": 0,
    "receive_wait_seconds": 0,
    "retention_seconds": 345_600,
    "max_message_bytes": 1_048_576,
    "max_receive_count": None,
    "dead_letter_queue": None,
    "paused": False,
    "fifo": False,
    "content_based_deduplication": False,
    "durability": "logged",
    "tags": {},
}


def _core(attributes: dict[str, Any]) -> dict[str, Any]:
    """The attributes of issue 2 (others, like FIFO settings, are other issues' to test)."""
    return {k: attributes[k] for k in DEFAULTS}


async def test_create_applies_sqs_defaults(broker: Broker) -> None:
    queue, created = await broker.create_queue("orders")
    assert created
    assert queue.name == "orders"
    assert _core(queue.attributes.to_json()) == DEFAULTS
    assert queue.attributes == QueueAttributes()
    fetched = await broker.get_queue("orders")
    assert (fetched.id, fetched.attributes) == (queue.id, queue.attributes)


async def test_create_keeps_given_attributes(broker: Broker) -> None:
    await broker.create_queue("dlq")
    given = {"visibility_timeout": 5, "delay_seconds": 2, "receive_wait_seconds": 3,
             "retention_seconds": 600, "max_message_bytes": 2048, "max_receive_count": 4,
             "dead_letter_queue": "dlq", "paused": True, "tags": {"team": "mail"}}
    queue, _ = await broker.create_queue("work", given)
    assert _core(queue.attributes.to_json()) == {**DEFAULTS, **given}
    assert _core((await broker.get_queue("work")).attributes.to_json()) == {**DEFAULTS, **given}


async def test_recreate_with_same_attributes_is_idempotent(broker: Broker) -> None:
    first, created = await broker.create_queue("jobs", {"visibility_timeout": 60})
    again, created_again = await broker.create_queue("jobs", {"visibility_timeout": 60})
    assert created and not created_again
    assert again.id == first.id
    # only the attributes given are compared
    plain, _ = await broker.create_queue("jobs")
    assert plain.id == first.id and plain.attributes.visibility_timeout == 60


async def test_recreate_with_different_attributes_conflicts(broker: Broker) -> None:
    await broker.create_queue("jobs", {"visibility_timeout": 60})
    with pytest.raises(QueueAlreadyExists):
        await broker.create_queue("jobs", {"visibility_timeout": 61})
    with pytest.raises(QueueAlreadyExists):
        await broker.create_queue("jobs", {"delay_seconds": 1})
    assert (await broker.get_queue("jobs")).attributes.visibility_timeout == 60


async def test_unknown_queue_is_not_found(broker: Broker) -> None:
    with pytest.raises(QueueNotFound):
        await broker.get_queue("nope")
    with pytest.raises(QueueNotFound):
        await send(broker, "nope", "x")
    with pytest.raises(QueueNotFound):
        await broker.receive("nope")
    with pytest.raises(QueueNotFound):
        await broker.update_queue("nope", {"paused": True})
    with pytest.raises(QueueNotFound):
        await broker.delete_queue("nope")
    with pytest.raises(QueueNotFound):
        await broker.purge_queue("nope")
    with pytest.raises(QueueNotFound):
        await broker.queue_stats("nope")


async def test_list_by_name_with_prefix_and_paging(broker: Broker) -> None:
    names = ["billing-a", "billing-b", "billing-c", "email", "email-dlq", "zeta"]
    for name in reversed(names):
        await broker.create_queue(name)
    assert [q.name for q in await broker.list_queues()] == names
    assert [q.name for q in await broker.list_queues(prefix="billing")] == names[:3]
    assert [q.name for q in await broker.list_queues(prefix="email")] == ["email", "email-dlq"]
    assert await broker.list_queues(prefix="nothing") == []
    page1 = await broker.list_queues(limit=4)
    page2 = await broker.list_queues(after=page1[-1].name, limit=4)
    assert [q.name for q in page1 + page2] == names
    assert [q.name for q in await broker.list_queues(prefix="billing", after="billing-a",
                                                     limit=1)] == ["billing-b"]


async def test_list_prefix_is_literal(broker: Broker) -> None:
    """`_` and `%` in a prefix are not wildcards."""
    for name in ("a_1", "ab1", "a-1"):
        await broker.create_queue(name)
    assert [q.name for q in await broker.list_queues(prefix="a_")] == ["a_1"]


async def test_list_limit_bounds(broker: Broker) -> None:
    for limit in (0, 1001, -1):
        with pytest.raises(InvalidInput):
            await broker.list_queues(limit=limit)


async def test_update_changes_only_given_attributes(broker: Broker) -> None:
    await broker.create_queue("q", {"delay_seconds": 3})
    updated = await broker.update_queue("q", {"visibility_timeout": 7, "tags": {"a": "b"}})
    assert updated.attributes.visibility_timeout == 7
    assert updated.attributes.delay_seconds == 3
    assert updated.attributes.tags == {"a": "b"}
    assert (await broker.get_queue("q")).attributes == updated.attributes


async def test_update_is_all_or_nothing(broker: Broker) -> None:
    await broker.create_queue("q")
    with pytest.raises(InvalidAttribute):
        await broker.update_queue("q", {"visibility_timeout": 9, "retention_seconds": 1})
    with pytest.raises(InvalidAttribute):
        await broker.update_queue("q", {"visibility_timeout": 9, "colour": "red"})
    assert (await broker.get_queue("q")).attributes == QueueAttributes()


async def test_update_cannot_change_fifo_or_durability(broker: Broker) -> None:
    await broker.create_queue("q")
    with pytest.raises(InvalidAttribute):
        await broker.update_queue("q", {"fifo": True})
    with pytest.raises(InvalidAttribute):
        await broker.update_queue("q", {"durability": "unlogged"})


async def test_delete_removes_queue_and_messages(broker: Broker) -> None:
    old, _ = await broker.create_queue("q")
    await send(broker, "q", "a", "b")
    await broker.delete_queue("q")
    with pytest.raises(QueueNotFound):
        await broker.get_queue("q")
    assert "q" not in [q.name for q in await broker.list_queues()]
    new, created = await broker.create_queue("q")
    assert created and new.id != old.id
    assert await receive_all(broker, "q") == []
    assert (await broker.queue_stats("q")).total == 0


async def test_purge_deletes_every_message(broker: Broker, clock: Any) -> None:
    await broker.create_queue("q")
    await broker.create_queue("other")
    await send(broker, "q", "a", "b")
    await send(broker, "q", "later", delay_seconds=60)
    await broker.receive("q", max_messages=1)  # one in flight
    await send(broker, "other", "keep")
    assert await broker.purge_queue("q") == 3
    assert (await broker.queue_stats("q")).total == 0
    clock.advance(3600)
    assert await receive_all(broker, "q") == []
    assert [m.body.value() for m in await receive_all(broker, "other")] == ["keep"]
    assert await broker.purge_queue("q") == 0


BAD_NAMES = ["", "a" * 81, "has space", "dot.name", "slash/name", "ünïcode", "tab\t",
             "x.fifo.fifo", "a" * 76 + ".fifo", 5, None]


# Input checks loop over their cases inside one test: each PostgreSQL test costs a database.
async def test_bad_queue_names(broker: Broker) -> None:
    for name in BAD_NAMES:
        with pytest.raises(InvalidQueueName):
            await broker.create_queue(name)  # type: ignore[arg-type]
    assert await broker.list_queues() == []


async def test_good_queue_names(broker: Broker) -> None:
    for name in ["a", "a" * 80, "A-b_9", "UPPER", "0"]:
        queue, created = await broker.create_queue(name)
        assert created and queue.name == name


ACCEPTED = [
    ("visibility_timeout", 0), ("visibility_timeout", 43_200),
    ("receive_wait_seconds", 0), ("receive_wait_seconds", 20),
    ("retention_seconds", 60), ("retention_seconds", 1_209_600),
    ("delay_seconds", 0), ("delay_seconds", 900),
    ("max_message_bytes", 1024), ("max_message_bytes", 1_048_576),
    ("paused", True), ("tags", {"k": "v" * 256}),
]

REJECTED = [
    ("visibility_timeout", -1), ("visibility_timeout", 43_201), ("visibility_timeout", "abc"),
    ("visibility_timeout", True), ("visibility_timeout", 1.5), ("visibility_timeout", None),
    ("receive_wait_seconds", 21), ("receive_wait_seconds", -1),
    ("retention_seconds", 59), ("retention_seconds", 1_209_601),
    ("delay_seconds", -1), ("delay_seconds", 901),
    ("max_message_bytes", 1023), ("max_message_bytes", 1_048_577),
    ("paused", "maybe"), ("paused", 1),
    ("durability", "fast"),
    ("content_based_deduplication", True),  # FIFO only
    ("fifo", True),  # only for names ending in .fifo
    ("tags", ["a"]), ("tags", {"k": 1}), ("tags", {"": "v"}), ("tags", {"k": "v" * 257}),
    ("tags", {f"k{i}": "v" for i in range(51)}),
    ("colour", "red"),
]


async def test_attribute_bounds_accepted(broker: Broker) -> None:
    for i, (key, value) in enumerate(ACCEPTED):
        queue, _ = await broker.create_queue(f"q{i}", {key: value})
        assert queue.attributes.to_json()[key] == value, key


async def test_attribute_bounds_rejected(broker: Broker) -> None:
    await broker.create_queue("q")
    for key, value in REJECTED:
        with pytest.raises(InvalidAttribute):
            await broker.create_queue("new", {key: value})
        with pytest.raises(InvalidAttribute):
            await broker.update_queue("q", {key: value})
    assert [q.name for q in await broker.list_queues()] == ["q"]
    assert (await broker.get_queue("q")).attributes == QueueAttributes()


DEAD_LETTER_REJECTED: list[dict[str, Any]] = [
    {"max_receive_count": 3},  # without a dead-letter queue
    {"dead_letter_queue": "dlq"},  # without max_receive_count
    {"max_receive_count": 0, "dead_letter_queue": "dlq"},
    {"max_receive_count": 1001, "dead_letter_queue": "dlq"},
    {"max_receive_count": 3, "dead_letter_queue": "missing"},
    {"max_receive_count": 3, "dead_letter_queue": "q"},  # itself
    {"max_receive_count": 3, "dead_letter_queue": "bad name"},
]


async def test_dead_letter_settings_rejected(broker: Broker) -> None:
    await broker.create_queue("dlq")
    for attributes in DEAD_LETTER_REJECTED:
        with pytest.raises(InvalidInput):
            await broker.create_queue("q", attributes)
    assert [q.name for q in await broker.list_queues()] == ["dlq"]


async def test_dead_letter_bounds_accepted(broker: Broker) -> None:
    await broker.create_queue("dlq")
    for count in (1, 1000):
        queue, _ = await broker.create_queue(
            f"q{count}", {"max_receive_count": count, "dead_letter_queue": "dlq"})
        assert queue.attributes.max_receive_count == count


async def test_unlogged_durability(broker: Broker, backend: str) -> None:
    if backend == "sqlite":
        with pytest.raises(Unsupported):
            await broker.create_queue("fast", {"durability": "unlogged"})
        return
    queue, _ = await broker.create_queue("fast", {"durability": "unlogged"})
    assert queue.attributes.durability == "unlogged"
    await send(broker, "fast", "x")
    [message] = await broker.receive("fast")
    assert message.body.value() == "x"

