"""Unlogged queues on PostgreSQL: their messages live in the unlogged table, with the same
semantics as logged ones."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import InvalidAttribute
from conveyor.models import Body, SendEntry


@pytest.fixture
async def pg_broker(postgres_url: str, clock: ManualClock) -> AsyncIterator[Broker]:
    from conveyor.storage.factory import storage_from_url

    broker = Broker(storage_from_url(postgres_url), clock=clock, sweep_interval=None)
    await broker.start()
    yield broker
    await broker.close()


def _counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as db:
        logged = db.execute("SELECT count(*) FROM conveyor_messages").fetchone()
        unlogged = db.execute("SELECT count(*) FROM conveyor_messages_unlogged").fetchone()
    assert logged is not None and unlogged is not None
    return int(logged[0]), int(unlogged[0])


@pytest.mark.postgres
async def test_unlogged_queue_uses_the_unlogged_table(
        pg_broker: Broker, postgres_url: str, clock: ManualClock) -> None:
    await pg_broker.create_queue("fast-dlq", {"durability": "unlogged"})
    await pg_broker.create_queue("fast", {"durability": "unlogged", "max_receive_count": 1,
                                          "dead_letter_queue": "fast-dlq"})
    await pg_broker.create_queue("safe")
    await pg_broker.send("fast", [SendEntry(Body.of(i)) for i in range(5)])
    await pg_broker.send("safe", [SendEntry(Body.of(i)) for i in range(3)])
    assert _counts(postgres_url) == (3, 5)

    got = await pg_broker.receive("fast", 2)
    assert [m.body.value() for m in got] == [0, 1]
    assert [r.status for r in await pg_broker.delete("fast", [got[0].receipt_handle])] == ["ok"]
    stats = await pg_broker.queue_stats("fast")
    assert (stats.visible, stats.in_flight) == (3, 1)
    clock.advance(31)
    assert len(await pg_broker.receive("fast", 10)) == 3  # message 1 goes to the DLQ
    assert (await pg_broker.queue_stats("fast-dlq")).visible == 1
    everything = await pg_broker.all_queue_stats()
    fast = (await pg_broker.get_queue("fast")).id
    assert everything[fast].in_flight == 3
    assert _counts(postgres_url) == (3, 4)

    task = await pg_broker.start_redrive("fast-dlq")
    assert task.status == "completed" and task.moved == 1
    assert await pg_broker.purge_queue("fast") == 4
    await pg_broker.delete_queue("safe")
    assert _counts(postgres_url) == (0, 0)


@pytest.mark.postgres
async def test_dead_letter_queue_must_share_durability(pg_broker: Broker) -> None:
    await pg_broker.create_queue("logged-dlq")
    with pytest.raises(InvalidAttribute):
        await pg_broker.create_queue("fast", {"durability": "unlogged", "max_receive_count": 3,
                                              "dead_letter_queue": "logged-dlq"})
