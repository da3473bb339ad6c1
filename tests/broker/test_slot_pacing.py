"""The pointer's pace: a slot is left once it has served SLOT_MS or filled past SLOT_BYTES,
so the consumed entries a claim walks while an old snapshot pins the xmin horizon stay at
about two slots' worth whatever the send rate (benchmarks/soak.py's p99 during the hold).

Time is virtual: each turn stands for a quarter of a second of traffic, and the pointer's
clock is moved back a second before every fourth turn's maintenance round.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from conveyor.broker.broker import Broker
from conveyor.storage.postgres import postgres_maintenance as maintenance_module
from conveyor.storage.postgres.postgres_maintenance import (
    MIN_SLOT_MS,
    SLOT_BYTES,
    SLOT_MS,
    SLOTS,
    Maintenance,
    due,
)
from conveyor.storage.postgres.postgres_storage import PostgresStorage
from tests.broker.conftest import Upkept
from tests.broker.test_table_upkeep import PAD, _claim_blocks, _pointer, _slot_bytes
from tests.support.messages import entry, receive_all


def test_a_slot_is_left_when_its_time_is_up_or_it_is_full() -> None:
    assert not due(0, 0)
    assert not due(SLOT_MS - 1, SLOT_BYTES - 1)
    assert due(SLOT_MS, 0)
    assert due(MIN_SLOT_MS, SLOT_BYTES)
    assert not due(MIN_SLOT_MS - 1, 10 * SLOT_BYTES)  # a burst: at most one move a second


async def _walk(postgres_url: str) -> tuple[list[int], list[int], int]:
    """Buffers per claim before and during a held xmin at a steady virtual rate, and the
    pointer's moves."""
    storage = PostgresStorage(postgres_url, maintenance=False)
    broker = Broker(storage, sweep_interval=None)
    await broker.start()
    try:
        queue, _ = await broker.create_queue("pace")
        maintenance = Maintenance(storage.pool)
        before: list[int] = []
        during: list[int] = []
        with psycopg.connect(postgres_url, autocommit=True) as db, \
                psycopg.connect(postgres_url) as hold:
            db.execute("UPDATE conveyor_message_rotation SET advanced_at = conveyor_now_ms()")
            moves, last = 0, _pointer(db)[0]
            for turn in range(64):
                if turn == 16:
                    hold.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    hold.execute("SELECT count(*) FROM conveyor_queues").fetchone()
                await broker.send("pace", [entry(f"{turn} {i} {PAD}") for i in range(200)])
                for _ in range(8):
                    (during if turn >= 16 else before).append(_claim_blocks(db, queue.id))
                    got = await broker.receive("pace", max_messages=25)
                    await broker.delete("pace", [m.receipt_handle for m in got])
                if turn % 4 == 3:
                    db.execute("UPDATE conveyor_message_rotation "
                               "SET advanced_at = advanced_at - 1000")
                    await maintenance.run_once()
                    current = _pointer(db)[0]
                    moves, last = moves + (current != last), current
            hold.rollback()
        return before, during, moves
    finally:
        await broker.close()


@pytest.mark.postgres
async def test_under_a_held_xmin_the_claim_walks_about_two_slots_whatever_the_rate(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """800 messages a (virtual) second: with slots of 256 KiB (~450 messages) the pointer
    moves every round and the claim's walk during the hold stays within twice its walk
    before; bounded by time alone (the pointer moving every SLOT_MS, 4,000 messages a slot)
    it grew to several times that."""
    monkeypatch.setattr(maintenance_module, "SLOT_BYTES", 256 * 1024)
    before, during, moves = await _walk(postgres_url)
    assert moves >= 14, moves  # one a round: 16 rounds
    assert max(during) <= 2 * max(before) + 20, (max(before), max(during))


@pytest.mark.postgres
async def test_a_truncate_never_waits_in_the_lock_queue_where_claims_would_queue_behind_it(
        pg: Upkept, postgres_url: str) -> None:
    """Every claim locks all the slots, so a TRUNCATE waiting for a slot's lock would hold
    up every claim that came after it (the soak's p99 spikes under a held xmin). It asks
    with NOWAIT, a few times, and leaves the slot for the next round: while a reader holds
    the slot, no lock request of the maintenance is ever seen waiting. Nothing is lost, and
    once the reader is gone the slot is emptied."""
    storage, broker = pg
    await broker.create_queue("q")
    ids = {r.id for r in await broker.send("q", [entry(i) for i in range(20)])}
    with psycopg.connect(postgres_url, autocommit=True) as db, \
            psycopg.connect(postgres_url) as reader:
        [slot] = [s for s, n in _slot_bytes(db).items() if n > 0]
        reader.execute(f"SELECT count(*) FROM conveyor_messages_s{slot}").fetchone()
        maintenance = Maintenance(storage.pool)
        attempt = asyncio.create_task(maintenance.rotate(slot, (slot + 2) % SLOTS))
        waiting = 0
        while not attempt.done():
            waiting += db.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted "
                "AND relation = %s::regclass", (f"conveyor_messages_s{slot}",)
            ).fetchone()[0]
            await asyncio.sleep(0.002)
        assert not await attempt
        assert waiting == 0
        reader.rollback()
        assert await maintenance.rotate(slot, (slot + 2) % SLOTS)
    assert {m.id for m in await receive_all(broker, "q")} == ids
