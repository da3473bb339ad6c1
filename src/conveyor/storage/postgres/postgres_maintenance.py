"""conveyor's own upkeep of its PostgreSQL tables, so they stay small whatever the server's
autovacuum does (off, asleep for its one-minute naptime, or blocked by an old snapshot).

Two tools, chosen by measurement (benchmarks/soak.py; notes in the 0008 migration):

- **Rotation** of the message table's slots (`conveyor_messages_s0..s3`, LIST partitions).
  New rows go to the slot `conveyor_message_rotation` names; every `SLOT_MS` the pointer
  moves to the next slot if that one is empty. A slot behind the pointer is consumed in
  order; its delayed rows are moved forward in batches (compacting a mostly consumed
  backlog the same way exists but is off: see `COMPACT`); once at most `MOVE_LIMIT`
  live rows are left, they are copied into the current slot under a short ACCESS EXCLUSIVE
  lock (same ids and tokens, so receipt handles keep working) and the slot is TRUNCATEd.
  TRUNCATE frees the space and the dead index entries a claim would walk, even while an
  old snapshot pins the xmin horizon, which VACUUM cannot.
- **Targeted VACUUM** of the other tables that churn (the unlogged messages, jobs, the
  delivery ledger, rate limits, slots, deduplication ids), and of a slot a backlog keeps
  from rotating, once their dead rows pass their live ones and a floor, at most every
  `VACUUM_EVERY` seconds per table.

A lock that cannot be had at once (`lock_timeout`) means "next round", never a wait that
would queue the claims behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import asyncpg

from conveyor.models import TableHealth
from conveyor.storage.postgres.postgres_base import Connection
from conveyor.storage.sql import load_queries
from conveyor.tasks import stop_task

log = logging.getLogger("conveyor.storage.postgres")
Q = load_queries("conveyor.storage.postgres", "maintenance.sql")

SLOTS = 4  # as in the 0008 migration: the partitions conveyor_messages_s0..s3
SLOT_MS = 5_000  # how long the pointer stays on a slot at least
MOVE_LIMIT = 1_000  # live rows copied under the lock at most (a few ms of work)
EVACUATE = 5_000  # rows moved forward per slot and round (delayed, or compacting)
# Compaction (moving a mostly consumed backlog forward) is off: in a 15-minute soak with a
# 5-minute held xmin and autovacuum off, the moved rows were consumed in the current slot,
# which cannot be truncated while it is current, and its dead head grew until claims
# crawled (40-80 msgs/s, a 127 MB slot). None: off; n: once dead rows are n x live ones.
COMPACT: int | None = None
LOCK_TIMEOUT = "50ms"  # claims queue behind a waiting TRUNCATE: give up quickly instead
_LOCK = 0x636F6E77  # one node truncates at a time
VACUUM_EVERY = 10.0  # seconds between VACUUMs of one table
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
    _vacuumed: dict[str, float] = field(default_factory=dict)
    _vacuum_looked: float = -VACUUM_EVERY
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
            row = await conn.fetchrow(Q["maintenance_rotation"])
            assert row is not None  # the 0008 migration made the one row
            current, advanced_at, now = int(row[0]), int(row[1]), int(row[2])
            if now - advanced_at >= SLOT_MS and await self._advance(conn, current):
                current = (current + 1) % SLOTS
            for slot in _behind(current):
                await self._empty(conn, slot, None)
            await self._vacuum(conn)

    async def _advance(self, conn: Connection, current: int) -> bool:
        moved: str = await conn.execute(Q["maintenance_advance"], current,
                                        (current + 1) % SLOTS)
        return moved.endswith(" 1")

    async def rotate(self, slot: int, into: int) -> bool:
        """Empty one slot now, its live rows moved into another (tests, operators); the
        background rounds do this for the slots that are due. True when truncated."""
        async with self.pool.acquire() as conn:
            return await self._empty(conn, slot, into)

    async def _empty(self, conn: Connection, slot: int, into: int | None) -> bool:
        table = f"conveyor_messages_s{slot}"
        # Cheap looks first, without a lock: nothing written since the last TRUNCATE, or
        # more live rows than a short lock can move (a backlog being consumed).
        if not await conn.fetchval(Q["maintenance_slot_used"], table):
            return False
        live_sql = Q["maintenance_slot_live"].format(table=table)
        if await conn.fetchval(live_sql, MOVE_LIMIT + 1) > MOVE_LIMIT:
            if into is None:
                await self._evacuate(conn, slot, table)
            return False
        try:
            async with conn.transaction():
                if not await conn.fetchval(Q["maintenance_try_lock"], _LOCK):
                    return False
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                # Under the lock no one else reads or writes the slot: count again, copy
                # the stragglers to the current slot, and empty it.
                live = int(await conn.fetchval(live_sql, MOVE_LIMIT + 1))
                if live > MOVE_LIMIT:
                    return False
                target = into if into is not None else int(
                    await conn.fetchval(Q["maintenance_current_slot"]))
                if target == slot:  # the pointer came round to it meanwhile: later
                    return False
                if live:
                    await conn.execute(Q["maintenance_slot_move"].format(table=table), target)
                await conn.execute(f"TRUNCATE {table}")
        except (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError):
            return False  # busy (a long reader, autovacuum): next round
        self.rotations += 1
        self.moved += live
        return True

    async def _evacuate(self, conn: Connection, slot: int, table: str) -> None:
        """Move rows of a slot behind the pointer forward, a batch a round: its delayed
        rows (they would hold it for their whole delay), and, with `COMPACT` set, once
        most of the slot has been consumed, every row not under a lease, so that the slot
        can be truncated (off by default: see `COMPACT`)."""
        target = int(await conn.fetchval(Q["maintenance_current_slot"]))
        if target == slot:
            return
        counts = await conn.fetchrow(Q["maintenance_slot_counts"], table)
        compact = (COMPACT is not None and counts is not None
                   and counts[1] >= COMPACT * max(counts[0], 1))
        status: str = await conn.execute(Q["maintenance_slot_evacuate"].format(table=table),
                                         target, EVACUATE, compact)
        self.moved += int(status.rsplit(" ", 1)[-1])

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


def _behind(current: int) -> list[int]:
    """Slots neither current nor just before it, oldest first (the next to be written
    first): nothing new goes there, and the previous slot's rows have had a slot's time
    to be received and deleted before it is emptied."""
    return [(current + k) % SLOTS for k in range(1, SLOTS - 1)]


async def table_health(pool: asyncpg.Pool) -> list[TableHealth]:
    """Live and dead rows and bytes (heap, indexes and TOAST) of conveyor's tables, the
    message slots summed as `conveyor_messages`; from the server's statistics."""
    with contextlib.suppress(asyncpg.UndefinedTableError):
        rows = await pool.fetch(Q["maintenance_table_health"])
        return [TableHealth(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]
    return []
