"""Claims do not wait for a slot's TRUNCATE (migration 0026): TRUNCATE rebuilds the slot's
indexes and PostgreSQL fsyncs each new file while it holds the slot's ACCESS EXCLUSIVE lock,
which a checkpoint or another process's writes can stretch to seconds; every claim used to
read all the slots and so stopped meanwhile (benchmarks/soak.py's stalls). The maintenance
now announces the slot first, and claims that begin after leave it out.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from conveyor.storage.postgres.postgres_maintenance import RETIRING, SLOTS, Maintenance
from tests.broker.conftest import Upkept
from tests.broker.test_table_upkeep import _pointer
from tests.support.messages import entry, receive_all

CLAIM = "SELECT count(*) FROM conveyor_messages_claim_v3(%s, 1, 30000, 100, NULL, NULL, '{}')"


def _waiting(db: psycopg.Connection[Any], slot: int) -> int:
    """Lock requests on a slot that are queued, not granted."""
    return int(db.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = "
                          "%s::regclass", (f"conveyor_messages_s{slot}",)).fetchone()[0])


@pytest.mark.postgres
async def test_a_receive_passes_over_a_slot_whose_truncate_is_under_way(
        pg: Upkept, postgres_url: str) -> None:
    """A slot announced and locked as a TRUNCATE holds it (here for as long as the test
    likes: a slow fsync); a receive meanwhile takes the messages of the other slots and
    never queues for the slot's lock."""
    _, broker = pg
    await broker.create_queue("q")
    ids = {r.id for r in await broker.send("q", [entry(i) for i in range(20)])}
    # The queue's counts (its in-flight quota) are read every slot too: while one is
    # truncated, the last counts stand in (there are some once the queue has been used).
    assert (await broker.queue_stats("q")).visible == 20
    with psycopg.connect(postgres_url, autocommit=True) as db, \
            psycopg.connect(postgres_url, autocommit=True) as truncating:
        current, _ = _pointer(db)
        slot = (current + 3) % SLOTS  # behind the pointer, as the maintenance empties
        truncating.execute("SELECT pg_advisory_lock(%s, %s)", (RETIRING, slot))
        truncating.execute("BEGIN")
        truncating.execute(f"LOCK TABLE conveyor_messages_s{slot} IN ACCESS EXCLUSIVE MODE")
        receive = asyncio.create_task(receive_all(broker, "q"))
        waited = 0
        while not receive.done() and not waited:
            waited = _waiting(db, slot)
            await asyncio.sleep(0.002)
        truncating.execute("ROLLBACK")  # a broken claim ends its wait here
        got = await receive
        assert waited == 0
        assert {m.id for m in got} == ids
        truncating.execute("SELECT pg_advisory_unlock(%s, %s)", (RETIRING, slot))


@pytest.mark.postgres
async def test_a_slot_is_not_truncated_while_a_claim_that_may_read_it_is_in_flight(
        pg: Upkept, postgres_url: str) -> None:
    """The announcement waits (NOWAIT, then the next round) for claims that began before it:
    they read every slot. Once they end, the slot is emptied, its messages kept."""
    storage, broker = pg
    queue, _ = await broker.create_queue("q")
    ids = {r.id for r in await broker.send("q", [entry(i) for i in range(20)])}
    with psycopg.connect(postgres_url, autocommit=True) as db, \
            psycopg.connect(postgres_url) as claiming:
        current, _ = _pointer(db)
        claiming.execute(CLAIM, (queue.id,)).fetchone()  # its transaction stays open
        maintenance = Maintenance(storage.pool)
        attempt = asyncio.create_task(maintenance.rotate(current, (current + 2) % SLOTS))
        waited = 0
        while not attempt.done():
            waited += _waiting(db, current)
            await asyncio.sleep(0.002)
        assert not await attempt
        assert waited == 0
        claiming.rollback()  # its lease is not taken after all
        assert await maintenance.rotate(current, (current + 2) % SLOTS)
        assert maintenance.rotations == 1
    assert {m.id for m in await receive_all(broker, "q")} == ids
