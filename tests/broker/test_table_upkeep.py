"""The soak's invariants in seconds: conveyor's tables stay bounded and its claims stay
cheap without leaning on the server's autovacuum, even while an old snapshot pins the
xmin horizon; on SQLite, space is reused and a purge gives it back.

The long form is benchmarks/soak.py (rates, p99 and sizes over 30 minutes).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.broker.broker import Broker
from conveyor.models import VisibilityEntry
from conveyor.storage.postgres import postgres_maintenance as maintenance_module
from conveyor.storage.postgres import postgres_storage as queries
from conveyor.storage.postgres.postgres_maintenance import SLOTS, Maintenance
from conveyor.storage.sqlite.sqlite_storage import SqliteStorage
from tests.broker.conftest import Upkept
from tests.support.messages import entry, receive_all

PAD = "x" * 200
# The claim's choice of rows, as message_claim makes it (without the lease it takes).
CLAIM_SCAN = ("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id FROM conveyor_messages "
              "WHERE queue_id = %s AND visible_at <= conveyor_now_ms() "
              "ORDER BY priority DESC, visible_at, id LIMIT 10 FOR UPDATE SKIP LOCKED")


def _blocks(plan: dict[str, Any]) -> int:
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


def _claim_blocks(db: psycopg.Connection[Any], queue_id: int) -> int:
    """Buffers the claim's row choice reads now (a rolled-back transaction)."""
    with db.transaction(force_rollback=True):
        [[found]] = db.execute(CLAIM_SCAN, (queue_id,)).fetchall()
    plan = found[0] if isinstance(found, list) else json.loads(found)[0]
    return _blocks(plan["Plan"])


def _slot_bytes(db: psycopg.Connection[Any], total: bool = False) -> dict[int, int]:
    """Each slot's heap (or with indexes and TOAST: `total`)."""
    size = "pg_total_relation_size" if total else "pg_relation_size"
    return {s: int(db.execute(f"SELECT {size}('conveyor_messages_s{s}')").fetchone()[0])
            for s in range(SLOTS)}


@pytest.fixture
def holder(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A REPEATABLE READ transaction that has read a row: it pins the xmin horizon, so
    VACUUM can remove nothing deleted after it began (an analytics query, say)."""
    with psycopg.connect(postgres_url) as db:
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        yield db


@pytest.mark.postgres
async def test_rotation_frees_slots_and_claims_stay_cheap_under_a_held_xmin(
        pg: Upkept, postgres_url: str) -> None:
    storage, broker = pg
    queue, _ = await broker.create_queue("soak")
    with psycopg.connect(postgres_url, autocommit=True) as db, \
            psycopg.connect(postgres_url) as hold:
        hold.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        hold.execute("SELECT count(*) FROM conveyor_queues").fetchone()
        for start in range(0, 6000, 500):
            await broker.send("soak", [entry(f"{i} {PAD}") for i in range(start, start + 500)])
        got = await receive_all(broker, "soak", limit=500)
        assert len(got) == 6000
        kept = got[:10]  # stragglers: received, still leased
        for start in range(10, len(got), 500):
            done = await broker.delete("soak", [m.receipt_handle
                                                for m in got[start:start + 500]])
            assert all(r.status == "ok" for r in done)
        waiting = [r.id for r in await broker.send("soak", [entry(f"w{i}")
                                                            for i in range(5)])]

        used = {s for s, n in _slot_bytes(db).items() if n > 0}
        assert 1 <= len(used) <= 2, used  # the test ran in under two 5 s slots
        into = next(s for s in range(SLOTS) if s not in used)
        walked = _claim_blocks(db, queue.id)
        # The dead entries the claim must step over: nothing may reclaim them.
        assert walked > 150, f"the claim read only {walked} buffers: proves nothing"

        maintenance = Maintenance(storage.pool)
        for slot in used:
            assert await maintenance.rotate(slot, into), f"slot {slot} not rotated"
        sizes = _slot_bytes(db, total=True)
        assert all(sizes[s] <= 6 * 8192 for s in used), sizes  # index metapages left
        after = _claim_blocks(db, queue.id)
        assert after < min(40, walked / 5), (f"the claim reads {after} buffers after "
                                             f"rotation, {walked} before")
        assert maintenance.moved == 15
        assert hold.execute("SELECT count(*) FROM conveyor_queues").fetchone() == (1,)
        hold.rollback()

    # Moved rows keep their ids and tokens: the old receipt handles still work, and
    # the messages never received are still there to receive.
    done = await broker.delete("soak", [m.receipt_handle for m in kept])
    assert [r.status for r in done] == ["ok"] * 10
    later = await receive_all(broker, "soak")
    assert sorted(m.id for m in later) == sorted(waiting)


@pytest.mark.postgres
async def test_the_pointer_moves_on_and_slots_behind_it_are_emptied(pg: Upkept,
                                                                   postgres_url: str) -> None:
    storage, broker = pg
    await broker.create_queue("q")
    maintenance = Maintenance(storage.pool)
    with psycopg.connect(postgres_url, autocommit=True) as db:
        def pointer() -> int:
            return int(db.execute("SELECT slot FROM conveyor_message_rotation").fetchone()[0])

        async def round_due() -> None:  # as if SLOT_MS had passed
            db.execute("UPDATE conveyor_message_rotation SET advanced_at = 0")
            await maintenance.run_once()

        db.execute("UPDATE conveyor_message_rotation SET advanced_at = conveyor_now_ms()")
        first = pointer()
        delayed = {r.id for r in await broker.send("q", [entry(i, delay_seconds=600)
                                                           for i in range(3)])}
        await broker.send("q", [entry(i) for i in range(100)])
        got = await receive_all(broker, "q")
        await broker.delete("q", [m.receipt_handle for m in got])
        await maintenance.run_once()  # not due yet: nothing moves
        assert pointer() == first and _slot_bytes(db)[first] > 0
        await round_due()
        assert pointer() == (first + 1) % SLOTS
        assert _slot_bytes(db)[first] > 0  # the previous slot: its rows get a slot's time
        await round_due()
        assert pointer() == (first + 2) % SLOTS
        assert _slot_bytes(db)[first] == 0  # behind the pointer: emptied
        assert maintenance.moved == 3 and maintenance.rotations == 1
    stats = await broker.queue_stats("q")
    assert (stats.visible, stats.delayed) == (0, 3)
    assert {m.id for m in await broker.peek("q")} == delayed


@pytest.mark.postgres
async def test_a_backlog_is_moved_forward_so_its_slot_can_go(
        pg: Upkept, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction (off by default, see COMPACT): a slot behind the pointer that holds more
    than a lock's worth of rows, once mostly consumed (here: always, COMPACT = 0), has its
    rows not under a lease moved forward in batches, and then it is truncated; leased rows
    keep their handles."""
    monkeypatch.setattr(maintenance_module, "MOVE_LIMIT", 10)
    monkeypatch.setattr(maintenance_module, "COMPACT", 0)
    storage, broker = pg
    await broker.create_queue("q")
    maintenance = Maintenance(storage.pool)
    sent = {r.id for r in await broker.send("q", [entry(i) for i in range(300)])}
    leased = await broker.receive("q", max_messages=5)
    with psycopg.connect(postgres_url, autocommit=True) as db:
        [first] = [s for s, n in _slot_bytes(db).items() if n > 0]
        for _ in range(2):
            db.execute("UPDATE conveyor_message_rotation SET advanced_at = 0")
            await maintenance.run_once()
        assert _slot_bytes(db)[first] > 0  # 295 rows moved; 5 leased rows stay
        await maintenance.run_once()
        assert _slot_bytes(db)[first] == 0, "not truncated"
        assert maintenance.moved == 300
    done = await broker.delete("q", [m.receipt_handle for m in leased])
    assert [r.status for r in done] == ["ok"] * 5
    rest = await receive_all(broker, "q")
    assert {m.id for m in rest} | {m.id for m in leased} == sent and len(rest) == 295


@pytest.mark.postgres
async def test_a_backlogs_slot_is_read_for_delayed_rows_once_then_only_every_sweep_interval(
        pg: Upkept, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding a slot's delayed rows reads the whole slot: a backlog's slot behind the
    pointer is looked at once, then left until SWEEP_EVERY has passed, and a row a retry
    delays there meanwhile is moved forward at the next look."""
    monkeypatch.setattr(maintenance_module, "MOVE_LIMIT", 10)
    monkeypatch.setattr(maintenance_module, "COMPACT", None)
    storage, broker = pg
    await broker.create_queue("q")
    maintenance = Maintenance(storage.pool)
    await broker.send("q", [entry(i) for i in range(100)])
    with psycopg.connect(postgres_url, autocommit=True) as db:
        [backlog] = [s for s, n in _slot_bytes(db).items() if n > 0]
        for _ in range(2):  # the backlog's slot ends up behind the pointer
            await _round_due(db, maintenance)
        assert backlog not in _pointer(db)
        assert (maintenance.sweeps, maintenance.moved) == (1, 0)
        for _ in range(3):
            await maintenance.run_once()
        assert maintenance.sweeps == 1, "the whole slot read again"
        [got] = await broker.receive("q", max_messages=1)
        await broker.retry("q", got.receipt_handle, delay_seconds=600)
        await maintenance.run_once()
        assert (maintenance.sweeps, maintenance.moved) == (1, 0)
        monkeypatch.setattr(maintenance_module, "SWEEP_EVERY", 0.0)
        await maintenance.run_once()
        assert (maintenance.sweeps, maintenance.moved) == (2, 1)
        slot = db.execute("SELECT slot FROM conveyor_messages WHERE id = %s",
                          (got.id,)).fetchone()[0]
        assert slot == _pointer(db)[1]  # into the previous slot, as every move
    stats = await broker.queue_stats("q")
    assert (stats.visible, stats.delayed) == (99, 1)


def _pointer(db: psycopg.Connection[Any]) -> tuple[int, int | None]:
    """(current slot, previous slot)."""
    row = db.execute("SELECT slot, previous FROM conveyor_message_rotation").fetchone()
    return int(row[0]), row[1]


async def _round_due(db: psycopg.Connection[Any], maintenance: Maintenance) -> None:
    """One maintenance round, as if the pointer had stayed SLOT_MS on its slot."""
    db.execute("UPDATE conveyor_message_rotation SET advanced_at = 0")
    await maintenance.run_once()


@pytest.mark.postgres
async def test_a_backlog_never_holds_the_pointer_and_nothing_moves_into_the_current_slot(
        pg: Upkept, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slot holding a backlog is skipped: the pointer keeps moving through the empty
    ones (it never lands on one with rows), the slots consumed behind it are truncated,
    and whatever maintenance moves (delayed rows, stragglers) goes to the previous slot:
    the current one holds nothing but what was sent after the pointer came to it."""
    monkeypatch.setattr(maintenance_module, "COMPACT", None)  # the backlog stays put
    storage, broker = pg
    await broker.create_queue("backlog")
    await broker.create_queue("flow")
    maintenance = Maintenance(storage.pool)
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("UPDATE conveyor_message_rotation SET advanced_at = conveyor_now_ms()")
        held, _ = _pointer(db)
        for start in range(0, 3000, 500):
            await broker.send("backlog", [entry(f"{i} {PAD}")
                                          for i in range(start, start + 500)])
        visited = []
        for turn in range(2 * SLOTS):
            await _round_due(db, maintenance)
            current, previous = _pointer(db)
            visited.append(current)
            assert current != held
            assert _slot_bytes(db)[current] == 0, f"turn {turn}: rows in the new slot"
            await broker.send("flow", [entry(i, delay_seconds=900 if i == 0 else 0)
                                       for i in range(50)])
            got = await receive_all(broker, "flow")
            assert len(got) == 49
            await broker.delete("flow", [m.receipt_handle for m in got[:-1]])
            assert _slot_bytes(db)[previous] > 0 or turn == 0
        # Every slot but the backlog's served as the current one, twice round.
        assert set(visited) == set(range(SLOTS)) - {held}
        assert all(a != b for a, b in itertools.pairwise(visited))  # moved every round
        used = {s for s, n in _slot_bytes(db).items() if n > 0}
        # The backlog's slot, the current and the previous one (holding the delayed
        # messages and the leased one); everything behind was truncated.
        assert used <= {held, visited[-1], visited[-2]} and held in used, used
        assert maintenance.rotations >= 2 * SLOTS - 3
    stats = await broker.queue_stats("flow")
    assert (stats.delayed, stats.in_flight) == (2 * SLOTS, 2 * SLOTS)
    assert len(await receive_all(broker, "backlog", limit=500)) == 3000


@pytest.mark.postgres
async def test_the_soak_in_seconds_claims_and_space_stay_flat_under_a_held_xmin(
        pg: Upkept, postgres_url: str) -> None:
    """benchmarks/soak.py's invariants, turn by turn with the rounds run by hand: while a
    snapshot pins the xmin horizon, a steady churn through many rotations leaves the
    claim's cost and the slots' size flat (nothing accumulates), and after the holder
    ends the space is back at its baseline."""
    storage, broker = pg
    queue, _ = await broker.create_queue("soak")
    maintenance = Maintenance(storage.pool)
    with psycopg.connect(postgres_url, autocommit=True) as db, \
            psycopg.connect(postgres_url) as hold:
        hold.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        hold.execute("SELECT count(*) FROM conveyor_queues").fetchone()
        blocks, sizes = [], []
        for turn in range(3 * SLOTS):
            await broker.send("soak", [entry(f"{turn} {i} {PAD}") for i in range(400)])
            blocks.append(_claim_blocks(db, queue.id))
            got = await receive_all(broker, "soak", limit=400)
            assert len(got) == 400
            done = await broker.delete("soak", [m.receipt_handle for m in got])
            assert all(r.status == "ok" for r in done)
            await _round_due(db, maintenance)
            sizes.append(sum(_slot_bytes(db, total=True).values()))
        # Without rotation both would grow with every turn (48 x 400 messages' dead
        # rows and entries, none of which VACUUM may remove under the holder).
        assert max(blocks[SLOTS:]) <= 2 * max(blocks[:SLOTS]) + 10, blocks
        assert max(sizes[SLOTS:]) <= 1.5 * max(sizes[:SLOTS]), sizes
        assert maintenance.rotations >= 3 * SLOTS - 3
        hold.rollback()
    with psycopg.connect(postgres_url, autocommit=True) as db:
        for _ in range(3):
            await _round_due(db, maintenance)
        used = [s for s, n in _slot_bytes(db).items() if n > 0]
        assert len(used) <= 1, used  # at most the slot just left, awaiting its turn
        assert sum(_slot_bytes(db, total=True).values()) <= max(sizes[:SLOTS])


def _probed(plan: dict[str, Any]) -> list[str]:
    """Relations an executed plan looked rows up in (nodes that ran at least once)."""
    found = []
    if plan.get("Actual Loops", 0) > 0 and "Index" in plan.get("Node Type", ""):
        found.append(str(plan["Index Name"]))
    for child in plan.get("Plans", []):
        found += _probed(child)
    return found


@pytest.mark.postgres
async def test_a_receipt_handle_names_its_slot_so_acknowledging_probes_one_partition(
        pg: Upkept, postgres_url: str) -> None:
    _, broker = pg
    queue, _ = await broker.create_queue("q")
    await broker.send("q", [entry(i) for i in range(10)])
    got = await broker.receive("q", max_messages=10)
    with psycopg.connect(postgres_url, autocommit=True) as db:
        [slot] = [s for s, n in _slot_bytes(db).items() if n > 0]
        tokens = [int(m.receipt_handle[32:], 16) for m in got]
        assert {t & 0xFF for t in tokens} == {slot}
        assert len(set(tokens)) == 10  # the rest is random
        ids = [m.id for m in got]
        sql = re.sub(r"\$(\d)", r"%(p\1)s", queries.Q["message_delete"])
        # The delete is a function carrying its planner pins (migration 0022): the plan
        # of its inner statement, as it ran, comes from auto_explain.
        notices: list[str] = []
        db.add_notice_handler(lambda n: notices.append(str(n.message_primary)))
        db.execute("LOAD 'auto_explain'")
        for setting in ("log_min_duration = 0", "log_analyze = on", "log_format = json",
                        "log_nested_statements = on", "log_level = notice"):
            db.execute(f"SET auto_explain.{setting}")
        with db.transaction(force_rollback=True):
            args = {"p1": queue.id, "p2": ids, "p3": tokens, "p4": [slot]}
            assert len(db.execute(sql, args).fetchall()) == len(ids)
        db.execute("SET auto_explain.log_min_duration = -1")
        [found] = [json.loads(n.split("plan:", 1)[1]) for n in notices
                   if "plan:" in n and "DELETE FROM" in n]
        probed = _probed(found["Plan"])
        assert set(probed) == {f"conveyor_messages_s{slot}_pkey"}, probed
        # A handle whose low byte names another slot (an older version's token, or a
        # row moved since) is still found, by a second look in every slot.
        changed = await broker.change_visibility(
            "q", [VisibilityEntry(got[0].receipt_handle, 60)])
        assert [r.status for r in changed] == ["ok"]
        db.execute("UPDATE conveyor_messages SET token = token # 1 WHERE id = %s",
                   (got[1].id,))
        moved = got[1].receipt_handle[:32] + format(tokens[1] ^ 1, "016x")
    extended = await broker.change_visibility("q", [VisibilityEntry(moved, 60)])
    assert [r.status for r in extended] == ["ok"]
    done = await broker.delete("q", [m.receipt_handle for m in got[2:]] + [moved])
    assert [r.status for r in done] == ["ok"] * 9
    again = await broker.delete("q", [moved, got[0].receipt_handle])
    assert [r.status for r in again] == ["stale", "ok"]


@pytest.mark.postgres
@pytest.mark.slow  # waits for the server's statistics (up to 10 s)
async def test_targeted_vacuum_where_autovacuum_is_off(
        pg: Upkept, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pruning on access removes some dead rows as it goes: a low floor keeps this short.
    monkeypatch.setattr(maintenance_module, "VACUUM_FLOOR", 500)
    storage, broker = pg
    await broker.create_queue("fast", {"durability": "unlogged"})
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("ALTER TABLE conveyor_messages_unlogged SET "
                   "(autovacuum_enabled = false)")
        for _ in range(4):
            await broker.send("fast", [entry(i) for i in range(1000)])
            got = await receive_all(broker, "fast")
            await broker.delete("fast", [m.receipt_handle for m in got])
        maintenance = Maintenance(storage.pool)
        query = ("SELECT n_dead_tup, vacuum_count FROM pg_stat_user_tables "
                 "WHERE relname = 'conveyor_messages_unlogged'")
        for _ in range(150):  # an idle backend reports its statistics within 10 s
            dead, vacuumed = db.execute(query).fetchone()
            if dead > 1000:
                break
            await asyncio.sleep(0.1)
        assert dead > 1000 and vacuumed == 0
        await maintenance.run_once()
        assert maintenance.vacuums >= 1
        dead, vacuumed = db.execute(query).fetchone()
        assert vacuumed == 1 and dead < 100
    health = {t.table: t for t in await broker.table_health()}
    assert health["conveyor_messages_unlogged"].live_rows == 0
    assert health["conveyor_messages"].bytes > 0


def _file_bytes(path: Path) -> int:
    return path.stat().st_size


async def test_sqlite_reuses_space_and_a_purge_gives_it_back(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    broker = Broker(SqliteStorage(str(path)), sweep_interval=None)
    await broker.start()
    try:
        await broker.create_queue("q")
        body = "y" * 1000
        sizes = []
        for _ in range(4):  # churn: the same space serves every round
            for _ in range(3):
                await broker.send("q", [entry(body) for _ in range(1000)])
            got = await receive_all(broker, "q")
            for start in range(0, len(got), 1000):
                await broker.delete("q", [m.receipt_handle for m in got[start:start + 1000]])
            sizes.append(_file_bytes(path))
        assert sizes[-1] <= sizes[0] * 1.2 + 1_000_000, sizes
        for _ in range(10):
            await broker.send("q", [entry(body) for _ in range(1000)])
        full = _file_bytes(path)
        assert full > 8_000_000
        await broker.purge_queue("q")
        free = {t.table: t for t in await broker.table_health()}["database"].free_bytes
        assert _file_bytes(path) < full / 2, (full, _file_bytes(path))
        assert free <= 5 * 1024 * 1024
    finally:
        await broker.close()
