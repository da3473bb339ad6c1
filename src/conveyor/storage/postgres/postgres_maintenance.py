"""conveyor's own upkeep of its PostgreSQL tables, so they stay small whatever the server's
autovacuum does (off, asleep for its one-minute naptime, or blocked by an old snapshot).

Two tools, chosen by measurement (benchmarks/soak.py; notes in migrations 0008 and 0015):

- **Rotation** of the message table's slots (`conveyor_messages_s0..s15`, LIST
  partitions). New rows go to the slot `conveyor_message_rotation` names; every
  `SLOT_MS`, or sooner once that slot holds `SLOT_BYTES`, the pointer moves to the next
  EMPTY slot, skipping any that still hold rows, so a backlog holds only its own slots
  and never the pointer. The slot it left (`previous`) gets a slot's time for its rows
  to be acknowledged. Every other slot is behind: consumed in order, its delayed rows
  moved forward, and, once most of a backlog in it has been consumed (`COMPACT`), the
  rest moved forward too, in batches (once a look has moved all of a slot's delayed rows,
  the next waits `SWEEP_EVERY` seconds); once at most `MOVE_LIMIT` live rows are left,
  they are copied under a short ACCESS EXCLUSIVE lock (same ids and tokens, so receipt
  handles keep working) and the slot is TRUNCATEd. Rows only ever move into `previous`,
  never into the current slot: the current slot is the one place TRUNCATE cannot reach,
  so nothing but new messages may pile up there. TRUNCATE frees the space and the dead
  index entries a claim would walk, even while an old snapshot pins the xmin horizon,
  which VACUUM cannot.
- **Targeted VACUUM** of the other tables that churn (the unlogged messages, jobs, the
  delivery ledger, rate limits, slots, deduplication ids), and of a slot a backlog keeps
  from rotating, once their dead rows pass their live ones and a floor, at most every
  `VACUUM_EVERY` seconds per table.

A claim's token carries the slot of its row in its low byte (queries.sql: message_claim),
so acknowledging and extending look in that one partition, and further only for rows
moved since (`SLOT_BITS`).

A lock that cannot be had at once (`lock_timeout`) means "next round", never a wait that
would queue the claims behind it. And claims do not wait for a TRUNCATE either: the slot is
announced first (`RETIRING`), and claims that begin after it leave that slot out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import asyncpg

from conveyor.models import SnapshotHold, TableHealth
from conveyor.storage.postgres.bound import Statements
from conveyor.storage.postgres.postgres_base import Connection
from conveyor.storage.sql import load_queries
from conveyor.tasks import stop_task

log = logging.getLogger("conveyor.storage.postgres")
Q = load_queries("conveyor.storage.postgres", "maintenance.sql")

SLOTS = 16  # as in migrations 0008 and 0015: the partitions conveyor_messages_s0..s15
SLOT_BITS = 8  # the low byte of a lease's token is its row's slot (message_claim)
SLOT_MS = 5_000  # how long the pointer stays on a slot at most (when slots are free)
# ...or less, once the slot's heap has grown past SLOT_BYTES (but no sooner than
# MIN_SLOT_MS). Why: while an old snapshot pins the xmin horizon, nothing marks the entries
# of consumed messages dead in the index, so every claim walks all of them in the current
# and the previous slot; bounding a slot by time let that walk grow with the send rate
# (10,000-20,000 entries, ~1,300 buffers a claim at 2,000 msgs/s: the soak's p99 doubled
# during the hold). Bounded by bytes, the walk stays at about two slots' worth of rows
# whatever the rate; at low rates the pointer still moves every SLOT_MS.
SLOT_BYTES = 1 << 20  # ~1,700 messages of 200 B, each as sent and as leased
MIN_SLOT_MS = 1_000
MOVE_LIMIT = 1_000  # live rows copied under the lock at most (a few ms of work)
EVACUATE = 5_000  # rows moved forward per slot and round (delayed, or compacting)
# A slot behind the pointer whose backlog is mostly consumed (dead rows at least COMPACT x
# its live ones: about two thirds consumed, each message leaving two) has the rest moved
# into `previous`, so that it can be truncated and claims stop walking its consumed head.
# (Moving them into the current slot, as a first version did, piled consumed entries where
# TRUNCATE cannot reach: claims crawled at 40-80 msgs/s under a held xmin.) None: off.
COMPACT: int | None = 4
LOCK_TIMEOUT = "50ms"  # for the pointer's row; a slot's own lock is only ever tried (NOWAIT)
# A slot's ACCESS EXCLUSIVE lock is asked for with NOWAIT, up to LOCK_TRIES times a round,
# LOCK_PAUSE seconds apart, and never waited for: every claim locks all the slots (it cannot
# know which it will read), so while a TRUNCATE waited for the statements in flight, every
# new claim, send and acknowledgement queued behind it. Waiting up to lock_timeout (50 ms)
# made the soak's p99 spikes during a held xmin (67-75 ms against 15-35 ms), when claims
# are slower and the wait ran out more often; with NOWAIT the stall is the TRUNCATE itself.
LOCK_TRIES = 10
LOCK_PAUSE = 0.01
_LOCK = 0x636F6E77  # one node truncates at a time
# A slot about to be emptied is announced by holding the advisory lock (RETIRING, slot) for
# the session; every claim tries each slot's lock shared and leaves out the slots it cannot
# have (migration 0026). Why: a claim reads all the slots, and so waited for the whole of
# a TRUNCATE holding one, including the fsync of each index it rebuilds (PostgreSQL 15:
# DataFileImmediateSync), which a checkpoint or another process's writes can stretch from
# milliseconds to seconds: every receive stopped meanwhile.
RETIRING = 0x636F6E72
VACUUM_EVERY = 10.0  # seconds between VACUUMs of one table
# Seconds before a slot behind the pointer whose delayed rows have all been moved is looked
# at again (unless it is due for compaction). Why: finding delayed rows reads the whole
# slot, and under a big backlog every slot holds tens of thousands of rows; looked at every
# round, on every node, it took 21 s of each drainer's minute in the 1M broker drain
# (benchmarks/broker.py). Only a retry or a lease change puts a new delayed row into a
# slot behind the pointer; it waits at most this long to be moved.
SWEEP_EVERY = 10.0
VACUUM_FLOOR = 5_000  # dead rows before a table is worth a VACUUM
CHURNING = ("conveyor_messages_unlogged", "conveyor_jobs", "conveyor_deliveries",
            "conveyor_rate_limits", "conveyor_slots", "conveyor_dedup", "conveyor_cron_ticks",
            "conveyor_workers")  # a row rewritten on every heartbeat


@dataclass
class Maintenance:
    """Rotation and targeted VACUUM on one pool; `run_once` is one round."""

    pool: asyncpg.Pool
    interval: float = 1.0
    rotations: int = 0
    moved: int = 0
    vacuums: int = 0
    sweeps: int = 0  # looks for delayed rows in a slot behind the pointer (not compaction)
    _vacuumed: dict[str, float] = field(default_factory=dict)
    _vacuum_looked: float = -VACUUM_EVERY
    _swept: dict[int, float] = field(default_factory=dict)  # slot -> when all were moved
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run a round every `interval` seconds in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        """Stop the background rounds."""
        task, self._task = self._task, None
        await stop_task(task)

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # upkeep must outlive a database hiccup
                log.warning("postgres maintenance round failed: %s", exc)

    async def run_once(self) -> None:
        """Move the pointer on when it is due, empty the slots behind it that can be, then
        VACUUM what needs it."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(Q["maintenance_rotation"], SLOTS)
            assert row is not None  # the 0008 migration made the one row
            current, previous = int(row[0]), row[1]
            advanced_at, now, sizes = int(row[2]), int(row[3]), [int(b) for b in row[4]]
            used = [size > 0 for size in sizes]
            if due(now - advanced_at, sizes[current]):
                target = next_slot(current, used)
                if target is not None and await self._advance(conn, current, target):
                    current, previous = target, current
            for slot in (current, previous):  # rows land here: look again once behind
                if slot is not None:
                    self._swept.pop(slot, None)
            for slot in behind(current, previous):
                if used[slot]:
                    await self._empty(conn, slot, None)
            await self._vacuum(conn)

    async def _advance(self, conn: Connection, current: int, target: int) -> bool:
        moved: str = await conn.execute(Q["maintenance_advance"], current, target)
        return moved.endswith(" 1")

    async def rotate(self, slot: int, into: int) -> bool:
        """Empty one slot now, its live rows moved into another (tests, operators); the
        background rounds do this for the slots that are due. True when truncated."""
        async with self.pool.acquire() as conn:
            return await self._empty(conn, slot, into)

    async def _empty(self, conn: Connection, slot: int, into: int | None) -> bool:
        table = f"conveyor_messages_s{slot}"
        # A cheap look first, without a lock: more live rows than a short lock can move
        # (a backlog being consumed) are moved forward in batches instead, if due.
        live_sql = Q["maintenance_slot_live"].format(table=table)
        if await conn.fetchval(live_sql, MOVE_LIMIT + 1) > MOVE_LIMIT:
            if into is None:
                await self._evacuate(conn, slot, table)
            return False
        retired = False
        try:
            for attempt in range(LOCK_TRIES):
                if attempt:
                    await asyncio.sleep(LOCK_PAUSE)
                # First the announcement (claims from then on leave the slot out), then
                # the slot's own lock: only claims already in flight can hold it up.
                retired = retired or bool(await conn.fetchval(Q["maintenance_retire"],
                                                              RETIRING, slot))
                if not retired:
                    continue
                done = await self._truncate(conn, slot, into, table, live_sql)
                if done is not None:
                    return done
            return False  # busy (a long reader, autovacuum): next round
        finally:
            if retired:
                await conn.fetchval(Q["maintenance_unretire"], RETIRING, slot)

    async def _truncate(self, conn: Connection, slot: int, into: int | None, table: str,
                        live_sql: str) -> bool | None:
        """One try at moving a slot's stragglers and truncating it: True when done, False
        when it must not be, None when its lock was not free at once."""
        try:
            async with conn.transaction():
                if not await conn.fetchval(Q["maintenance_try_lock"], _LOCK):
                    return False
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                current, previous = await _pointer(conn)
                target = into if into is not None else previous
                # Never into the current slot; a round empties only slots behind the
                # pointer (it may have moved meanwhile), an operator any but the target.
                if target is None or target in (slot, current) or (
                        into is None and slot == current):
                    return False
                await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE NOWAIT")
                # Under the lock no one else reads or writes the slot: count again, copy
                # the stragglers forward, and empty it.
                live = int(await conn.fetchval(live_sql, MOVE_LIMIT + 1))
                if live > MOVE_LIMIT:
                    return False
                if live:
                    await conn.execute(Q["maintenance_slot_move"].format(table=table),
                                       target)
                await conn.execute(f"TRUNCATE {table}")
        except (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError):
            return None
        self.rotations += 1
        self.moved += live
        return True

    async def _evacuate(self, conn: Connection, slot: int, table: str) -> None:
        """Move rows of a slot behind the pointer into `previous`, a batch a round: its
        delayed rows (they would hold it for their whole delay), and, once most of the
        slot has been consumed (`COMPACT`), every row not under a lease, so that the slot
        can be truncated."""
        async with conn.transaction():
            current, target = await _pointer(conn)
            if target is None or slot in (current, target):
                return
            counts = await conn.fetchrow(Q["maintenance_slot_counts"], table)
            compact = (COMPACT is not None and counts is not None
                       and counts[1] >= COMPACT * max(counts[0], 1))
            clock = time.monotonic()
            if not compact and clock - self._swept.get(slot, -SWEEP_EVERY) < SWEEP_EVERY:
                return
            status: str = await conn.execute(
                Q["maintenance_slot_evacuate"].format(table=table), target, EVACUATE,
                compact)
        moved = int(status.rsplit(" ", 1)[-1])
        self.moved += moved
        if not compact:
            self.sweeps += 1
            if moved < EVACUATE:  # the whole slot was read: none is left
                self._swept[slot] = clock

    async def _vacuum(self, conn: Connection) -> None:
        clock = time.monotonic()
        if clock - self._vacuum_looked < VACUUM_EVERY:
            return
        self._vacuum_looked = clock
        # A slot only while it holds a backlog (at least MOVE_LIMIT live rows): one that
        # rotation will empty must not be recorded as empty (see the 0008 migration).
        for row in await conn.fetch(Q["maintenance_vacuum_due"], list(CHURNING), VACUUM_FLOOR,
                                    [f"conveyor_messages_s{s}" for s in range(SLOTS)],
                                    MOVE_LIMIT):
            name = str(row[0])
            if clock - self._vacuumed.get(name, 0.0) < VACUUM_EVERY:
                continue
            self._vacuumed[name] = clock
            try:
                # SKIP_LOCKED: if autovacuum (or another node) is at it, leave it be.
                await conn.execute(f"VACUUM (SKIP_LOCKED) {name}")
                self.vacuums += 1
            except asyncpg.PostgresError as exc:
                log.info("postgres maintenance: VACUUM %s: %s", name, exc)


async def _pointer(conn: Connection) -> tuple[int, int | None]:
    """(current, previous) slot, the pointer's row locked against moving (FOR SHARE)."""
    row = await conn.fetchrow(Q["maintenance_rotation_locked"])
    assert row is not None  # the 0008 migration made the one row
    return int(row[0]), None if row[1] is None else int(row[1])


async def retiring(conn: Statements) -> list[int]:
    """The slots a maintenance is emptying now; the others cannot begin to be emptied until
    the caller's transaction ends (as for a claim, migration 0026)."""
    row = await conn.fetchrow(Q["maintenance_retiring"], RETIRING, SLOTS)
    return list(row[0])


def due(age_ms: int, current_bytes: int) -> bool:
    """Whether the pointer should move on: its slot has served SLOT_MS, or has filled
    past SLOT_BYTES after at least MIN_SLOT_MS."""
    return age_ms >= SLOT_MS or (age_ms >= MIN_SLOT_MS and current_bytes >= SLOT_BYTES)


def next_slot(current: int, used: list[bool]) -> int | None:
    """The first empty slot after the current one (in ring order), or None when every
    slot holds rows: the pointer then stays until one is emptied."""
    for k in range(1, SLOTS):
        slot = (current + k) % SLOTS
        if not used[slot]:
            return slot
    return None


def behind(current: int, previous: int | None) -> list[int]:
    """Slots neither current nor previous, oldest first (the ring order after the current
    one): nothing new goes there, and the previous slot's rows have had a slot's time to
    be received and deleted before it is emptied."""
    return [s for s in ((current + k) % SLOTS for k in range(1, SLOTS)) if s != previous]


async def table_health(pool: asyncpg.Pool) -> list[TableHealth]:
    """Live and dead rows and bytes (heap, indexes and TOAST) of conveyor's tables, the
    message slots summed as `conveyor_messages`; from the server's statistics."""
    with contextlib.suppress(asyncpg.UndefinedTableError):
        rows = await pool.fetch(Q["maintenance_table_health"])
        return [TableHealth(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]
    return []


async def snapshot_hold(pool: asyncpg.Pool) -> SnapshotHold | None:
    """The oldest snapshot holding back the xmin horizon of this database, if any."""
    row = await pool.fetchrow(Q["maintenance_snapshot_hold"])
    if row is None:
        return None
    return SnapshotHold(str(row[0]), row[1], row[2], row[3])
