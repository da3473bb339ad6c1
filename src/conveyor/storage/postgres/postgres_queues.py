"""Queues and their move tasks in PostgreSQL, and how bloated conveyor's tables are.

A mixin of `PostgresStorage`. A queue's messages are in the slotted (logged) table or the
unlogged one, by its durability; `_q` picks the statements for it, remembering each
queue's durability from any row read.
"""

from __future__ import annotations

from typing import Any

from conveyor.models import MoveTask, Queue, QueueStats, SnapshotHold, TableHealth
from conveyor.storage import rows
from conveyor.storage.base import QueueListParams, QueueRow, QueueUpdateParams
from conveyor.storage.postgres.postgres_base import PostgresBase, translated
from conveyor.storage.postgres.postgres_maintenance import retiring, snapshot_hold, table_health
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres")
UNLOGGED = {name: sql.replace("conveyor_messages", "conveyor_messages_unlogged")
            for name, sql in Q.items()}
"""The same statements for queues whose durability is 'unlogged'."""


class PostgresQueues(PostgresBase):
    """Queues, their counts, move tasks, and the tables' health."""

    _unlogged: set[int]
    _logged: set[int]
    _last_stats: dict[int, QueueStats]

    def _remember(self, row: Any) -> Queue:
        queue = rows.queue_from_row(row)
        (self._unlogged if queue.attributes.durability == "unlogged" else self._logged).add(
            queue.id)
        return queue

    async def _unlogged_queue(self, queue_id: int) -> bool:
        """Whether a queue's messages are in the unlogged table."""
        return await self._q(queue_id) is UNLOGGED

    async def _q(self, queue_id: int) -> dict[str, str]:
        """The statements for a queue's messages table (logged or unlogged)."""
        if queue_id in self._unlogged:
            return UNLOGGED
        if queue_id not in self._logged:
            with translated():  # on the pool even when bound: rows by name, any driver
                found = await self.pool.fetchrow(Q["queue_get_by_id"], queue_id)
            if found is not None and self._remember(found).attributes.durability == "logged":
                self._logged.add(queue_id)
            if queue_id in self._unlogged:
                return UNLOGGED
        return Q

    # queues -------------------------------------------------------------------------
    async def queue_create(self, row: QueueRow, now: int | None) -> tuple[Queue, bool]:
        """Insert a queue or return the existing one of that name."""
        found = await self._fetchrow(Q["queue_insert"], row.region, row.name, row.attributes,
                                     row.paused, now)
        if found is not None:
            return self._remember(found), True
        existing = await self._fetchrow(Q["queue_get"], row.region, row.name)
        if existing is None:  # deleted between the two statements: try once more
            return await self.queue_create(row, now)
        return self._remember(existing), False

    async def queue_get(self, region: str, name: str) -> Queue | None:
        """One queue by name."""
        found = await self._fetchrow(Q["queue_get"], region, name)
        return self._remember(found) if found else None

    async def queue_get_by_id(self, queue_id: int) -> Queue | None:
        """One queue by id."""
        found = await self._fetchrow(Q["queue_get_by_id"], queue_id)
        return self._remember(found) if found else None

    async def queue_regions(self) -> list[str]:
        """Every region that has a queue."""
        return [r[0] for r in await self._fetch(Q["queue_regions"])]

    async def queue_catalog_stamp(self, region: str) -> tuple[int, int]:
        """(queues, latest `updated_at`) of a region."""
        [row] = await self._fetch(Q["queue_catalog_stamp"], region)
        return int(row[0]), int(row[1])

    async def queue_list(self, params: QueueListParams) -> list[Queue]:
        """Queues by name (bytewise order, as on SQLite)."""
        return [self._remember(r) for r in await self._fetch(
            Q["queue_list"], params.region, params.prefix, params.after or "", params.limit)]

    async def queue_update(self, params: QueueUpdateParams) -> Queue | None:
        """Replace a queue's attributes."""
        found = await self._fetchrow(Q["queue_update"], params.queue_id, params.attributes,
                                     params.paused, params.now)
        return self._remember(found) if found else None

    async def queue_delete(self, queue_id: int) -> bool:
        """Delete a queue with its messages and deduplication ids."""
        async with self._tx() as conn:
            await conn.execute((await self._q(queue_id))["queue_delete_messages"], queue_id)
            await conn.execute(Q["queue_delete_dedup"], queue_id)
            status: str = await conn.execute(Q["queue_delete"], queue_id)
        return status.endswith(" 1")

    async def queue_purge(self, queue_id: int) -> int:
        """Delete every message of a queue, and its deduplication ids with them."""
        q = await self._q(queue_id)
        async with self._tx() as conn:
            status: str = await conn.execute(q["queue_delete_messages"], queue_id)
            await conn.execute(Q["queue_delete_dedup"], queue_id)
        return int(status.rsplit(" ", 1)[-1])

    async def queue_stats(self, queue_id: int, now: int | None, *,
                          recent: bool = False) -> QueueStats:
        """Exact counts in one statement (one snapshot); with `recent`, while a slot is
        being truncated, the last counts of the queue instead."""
        q = await self._q(queue_id)
        if not recent or q is UNLOGGED:  # the unlogged table: one slot, never truncated
            found = await self._fetchrow(q["queue_stats"], queue_id, now)
        else:
            # The counts read every slot, so they would wait for a TRUNCATE's lock, and
            # the receives that check the queue's in-flight quota with them (quotas.py)
            # with it: a moment-old answer is better than none for seconds.
            async with self._tx() as conn:
                if await retiring(conn) and queue_id in self._last_stats:
                    return self._last_stats[queue_id]
                found = await conn.fetchrow(q["queue_stats"], queue_id, now)
        assert found is not None
        stats = rows.stats_from_row(found[:4], int(found[5]), found[4])
        self._last_stats[queue_id] = stats
        return stats

    async def queue_stats_all(self, region: str, now: int | None) -> dict[int, QueueStats]:
        """Counts for every queue of a region holding messages."""
        async with self._tx() as conn:
            dead: dict[int, int] = {
                r[0]: r[1] for q in (Q, UNLOGGED)
                for r in await conn.fetch(q["queue_dead_letters_all"], region)}
            found = {r[0]: rows.stats_from_row(r[1:5], dead.pop(r[0], 0), r[5])
                     for q in (Q, UNLOGGED)
                     for r in await conn.fetch(q["queue_stats_all"], region, now)}
        for queue_id, count in dead.items():
            found[queue_id] = QueueStats(dead_letters=count)
        return found

    # move tasks ---------------------------------------------------------------------
    async def move_task_create(self, source_queue_id: int, task: MoveTask) -> None:
        """Record a new task."""
        await self._execute(Q["move_task_insert"], task.id, source_queue_id, task.status,
                            rows.task_to_json(task), task.started_at)

    async def move_task_update(self, task: MoveTask) -> bool:
        """Save progress while the task is running."""
        return await self._execute(Q["move_task_update"], task.id, task.status,
                                   rows.task_to_json(task)) > 0

    async def move_task_get(self, task_id: str) -> MoveTask | None:
        """One task."""
        found = await self._fetchrow(Q["move_task_get"], task_id)
        return rows.task_from_json(found[0]) if found else None

    async def move_task_list(self, source_queue_id: int) -> list[MoveTask]:
        """Tasks of a source queue, newest first."""
        return [rows.task_from_json(r[0])
                for r in await self._fetch(Q["move_task_list"], source_queue_id)]

    async def table_health(self) -> list[TableHealth]:
        """Rows and bytes of conveyor's tables, from the server's statistics."""
        with translated():
            return await table_health(self.pool)

    async def snapshot_hold(self) -> SnapshotHold | None:
        """The oldest snapshot holding back this database's xmin horizon."""
        with translated():
            return await snapshot_hold(self.pool)
