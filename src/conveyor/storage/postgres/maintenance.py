"""conveyor's own upkeep of its PostgreSQL tables, so they stay small whatever the server's
autovacuum does (off, asleep for its one-minute naptime, or blocked by an old snapshot).

Two tools, chosen by measurement (benchmarks/soak.py; notes in the 0006 migration):

- **Rotation** of the message table's time slots (`conveyor_messages_s0..s3`, LIST
  partitions written by the clock, a new slot every 5 s). A slot two slots old holds only
  dead rows and a few stragglers (delayed, backlogged or leased messages): under a short
  ACCESS EXCLUSIVE lock its live rows are copied into the current slot (same ids and
  tokens, so receipt handles keep working) and it is TRUNCATEd. TRUNCATE frees the space and
  the dead index entries a claim would walk, even while an old snapshot pins the xmin
  horizon, which VACUUM cannot. A slot with more than `MOVE_LIMIT` live rows (a backlog) is
  left for later: moving it would hold the lock too long.
- **Targeted VACUUM** of the other tables that churn (the unlogged messages, jobs, the
  delivery ledger, rate limits, slots, deduplication ids) once their dead rows pass their
  live ones and a floor, at most every `VACUUM_EVERY` seconds per table.

One node does it at a time (a transaction-scoped advisory lock); a lock it cannot get at
once (`lock_timeout`) means "next round", never a wait that would queue the claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import asyncpg

from conveyor.models import TableHealth
from conveyor.storage.postgres.base import Connection
from conveyor.storage.sql import load_queries
from conveyor.tasks import stop_task

log = logging.getLogger("conveyor.storage.postgres")
Q = load_queries("conveyor.storage.postgres", "maintenance.sql")

SLOTS = 4  # as in the 0006 migration: conveyor_message_slot() and the partitions
MOVE_LIMIT = 5_000  # live rows copied under the lock at most (a few ms of work)
LOCK_TIMEOUT = "50ms"  # claims queue behind a waiting TRUNCATE: give up quickly instead
_LOCK = 0x636F6E77  # one node maintains at a time
VACUUM_EVERY = 10.0  # seconds between VACUUMs of one table
VACUUM_FLOOR = 5_000  # dead rows before a table is worth a VACUUM
CHURNING = ("conveyor_messages_unlogged", "conveyor_jobs", "conveyor_deliveries",
            "conveyor_rate_limits", "conveyor_slots", "conveyor_dedup", "conveyor_cron_ticks")


@dataclass
class Maintenance:
    """Rotation and targeted VACUUM on one pool; `run_once` is one round."""

    pool: asyncpg.Pool
    interval: float = 1.0
    rotations: int = 0
    moved: int = 0
    vacuums: int = 0
    _vacuumed: dict[str, float] = field(default_factory=dict)
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
        """Rotate the slots that are due, then VACUUM what needs it."""
        async with self.pool.acquire() as conn:
            current = int(await conn.fetchval(Q["maintenance_current_slot"]))
            for slot in _due(current):
                await self._rotate(conn, slot, None)
            await self._vacuum(conn)

    async def rotate(self, slot: int, into: int) -> bool:
        """Empty one slot now, its live rows moved into another (tests, operators); the
        background rounds do this for the slots that are due. True when truncated."""
        async with self.pool.acquire() as conn:
            return await self._rotate(conn, slot, into)

    async def _rotate(self, conn: Connection, slot: int, into: int | None) -> bool:
        table = f"conveyor_messages_s{slot}"
        # Cheap looks first, without a lock: nothing written since the last TRUNCATE, or
        # a backlog too big to move now.
        if not await conn.fetchval(Q["maintenance_slot_used"], table):
            return False
        live_sql = Q["maintenance_slot_live"].format(table=table)
        if await conn.fetchval(live_sql, MOVE_LIMIT + 1) > MOVE_LIMIT:
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
                if target == slot:  # the clock came round while we looked: next time
                    return False
                if live:
                    await conn.execute(Q["maintenance_slot_move"].format(table=table), target)
                await conn.execute(f"TRUNCATE {table}")
        except (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError):
            return False  # busy (a long reader, autovacuum): next round
        self.rotations += 1
        self.moved += live
        return True

    async def _vacuum(self, conn: Connection) -> None:
        clock = time.monotonic()
        for row in await conn.fetch(Q["maintenance_vacuum_due"], list(_vacuumable()),
                                    VACUUM_FLOOR):
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


def _due(current: int) -> list[int]:
    """Slots neither current nor just before it: nothing new is written there, and the
    stragglers of the previous slot have had a slot's time to be received and deleted."""
    return [s for s in range(SLOTS) if s not in (current, (current - 1) % SLOTS)]


def _vacuumable() -> tuple[str, ...]:
    return (*CHURNING, *(f"conveyor_messages_s{s}" for s in range(SLOTS)))


async def table_health(pool: asyncpg.Pool) -> list[TableHealth]:
    """Live and dead rows and bytes (heap, indexes and TOAST) of conveyor's tables, the
    message slots summed as `conveyor_messages`; from the server's statistics."""
    with contextlib.suppress(asyncpg.UndefinedTableError):
        rows = await pool.fetch(Q["maintenance_table_health"])
        return [TableHealth(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]
    return []
