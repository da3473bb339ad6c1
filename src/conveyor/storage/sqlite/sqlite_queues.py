"""Queues and their move tasks in the SQLite file, and how big the file is.

A mixin of `SqliteStorage`: each write is one `BEGIN IMMEDIATE` transaction in the
storage's thread (sqlite_base.py).
"""

from __future__ import annotations

import sqlite3

from conveyor.models import MoveTask, Queue, QueueStats, SnapshotHold, TableHealth
from conveyor.storage import rows
from conveyor.storage.base import QueueListParams, QueueRow, QueueUpdateParams
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase
from conveyor.storage.sqlite.sqlite_maintenance import (
    WalHold,
    give_back,
    snapshot_hold,
    table_health,
)

Q = load_queries("conveyor.storage.sqlite")


class SqliteQueues(SqliteBase):
    """Queues, their counts, move tasks, and the file's health."""

    _wal_hold: WalHold

    # queues -------------------------------------------------------------------------
    async def queue_create(self, row: QueueRow, now: int | None) -> tuple[Queue, bool]:
        """Insert a queue or return the existing one of that name."""
        def run(db: sqlite3.Connection) -> tuple[Queue, bool]:
            with self._write(db):
                found = db.execute(Q["queue_insert"], {
                    "region": row.region, "name": row.name, "attributes": row.attributes,
                    "paused": row.paused, "now": self._now(now)}).fetchone()
                if found is not None:
                    return rows.queue_from_row(found), True
                existing = db.execute(Q["queue_get"],
                                      {"region": row.region, "name": row.name}).fetchone()
                return rows.queue_from_row(existing), False
        return await self._run(run)

    async def queue_get(self, region: str, name: str) -> Queue | None:
        """One queue by name."""
        def run(db: sqlite3.Connection) -> Queue | None:
            found = db.execute(Q["queue_get"], {"region": region, "name": name}).fetchone()
            return rows.queue_from_row(found) if found else None
        return await self._run(run)

    async def queue_get_by_id(self, queue_id: int) -> Queue | None:
        """One queue by id."""
        def run(db: sqlite3.Connection) -> Queue | None:
            found = db.execute(Q["queue_get_by_id"], {"id": queue_id}).fetchone()
            return rows.queue_from_row(found) if found else None
        return await self._run(run)

    async def queue_regions(self) -> list[str]:
        """Every region that has a queue."""
        return await self._run(lambda db: [r[0] for r in db.execute(Q["queue_regions"])])

    async def queue_catalog_stamp(self, region: str) -> tuple[int, int]:
        """(queues, latest `updated_at`) of a region."""
        def run(db: sqlite3.Connection) -> tuple[int, int]:
            count, latest = db.execute(Q["queue_catalog_stamp"], {"region": region}).fetchone()
            return int(count), int(latest)
        return await self._run(run)

    async def queue_list(self, params: QueueListParams) -> list[Queue]:
        """Queues by name."""
        args = {"region": params.region, "prefix": params.prefix, "after": params.after or "",
                "limit": params.limit}
        return await self._run(
            lambda db: [rows.queue_from_row(r) for r in db.execute(Q["queue_list"], args)])

    async def queue_update(self, params: QueueUpdateParams) -> Queue | None:
        """Replace a queue's attributes."""
        def run(db: sqlite3.Connection) -> Queue | None:
            with self._write(db):
                found = db.execute(Q["queue_update"], {
                    "id": params.queue_id, "attributes": params.attributes,
                    "paused": params.paused, "now": self._now(params.now)}).fetchone()
            return rows.queue_from_row(found) if found else None
        return await self._run(run)

    async def queue_delete(self, queue_id: int) -> bool:
        """Delete a queue with its messages and deduplication ids."""
        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                db.execute(Q["queue_delete_messages"], {"id": queue_id})
                db.execute(Q["queue_delete_dedup"], {"id": queue_id})
                deleted = db.execute(Q["queue_delete"], {"id": queue_id}).rowcount > 0
            give_back(db)  # the freed pages back to the file system, as after a purge
            return deleted
        return await self._run(run)

    async def queue_purge(self, queue_id: int) -> int:
        """Delete every message of a queue, and its deduplication ids with them."""
        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                purged = db.execute(Q["queue_delete_messages"], {"id": queue_id}).rowcount
                db.execute(Q["queue_delete_dedup"], {"id": queue_id})
            give_back(db)  # a purge that leaves the file mostly free gives the space back
            return int(purged)
        return await self._run(run)

    async def table_health(self) -> list[TableHealth]:
        """The file, its free pages and its WAL."""
        return await self._run(lambda db: table_health(db, self.path))

    async def snapshot_hold(self) -> SnapshotHold | None:
        """A reader whose snapshot keeps the WAL from being checkpointed, if any."""
        return await self._run(lambda db: snapshot_hold(db, self.path, self._wal_hold))

    async def queue_stats(self, queue_id: int, now: int | None, *,
                          recent: bool = False) -> QueueStats:
        """Exact counts, read in one snapshot (never waiting on a writer: `recent` is moot)."""
        at = self._now(now)

        def run(db: sqlite3.Connection) -> QueueStats:
            db.execute("BEGIN")
            try:
                row = db.execute(Q["queue_stats"], {"id": queue_id, "now": at}).fetchone()
                dead = db.execute(Q["queue_dead_letters"], {"id": queue_id}).fetchone()[0]
            finally:
                db.execute("COMMIT")
            return rows.stats_from_row(row, dead, at)
        return await self._run(run)

    async def queue_stats_all(self, region: str, now: int | None) -> dict[int, QueueStats]:
        """Counts for every queue of a region holding messages."""
        at = self._now(now)

        def run(db: sqlite3.Connection) -> dict[int, QueueStats]:
            params = {"region": region, "now": at}
            dead = dict(db.execute(Q["queue_dead_letters_all"], params).fetchall())
            found = {r[0]: rows.stats_from_row(r[1:], dead.pop(r[0], 0), at)
                     for r in db.execute(Q["queue_stats_all"], params)}
            for queue_id, count in dead.items():
                found[queue_id] = QueueStats(dead_letters=count)
            return found
        return await self._run(run)

    # move tasks ---------------------------------------------------------------------
    async def move_task_create(self, source_queue_id: int, task: MoveTask) -> None:
        """Record a new task."""
        params = {"id": task.id, "source_queue_id": source_queue_id, "status": task.status,
                  "data": rows.task_to_json(task), "started_at": task.started_at}

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.execute(Q["move_task_insert"], params)
        await self._run(run)

    async def move_task_update(self, task: MoveTask) -> bool:
        """Save progress while the task is running."""
        params = {"id": task.id, "status": task.status, "data": rows.task_to_json(task)}

        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                return db.execute(Q["move_task_update"], params).rowcount > 0
        return await self._run(run)

    async def move_task_get(self, task_id: str) -> MoveTask | None:
        """One task."""
        def run(db: sqlite3.Connection) -> MoveTask | None:
            found = db.execute(Q["move_task_get"], {"id": task_id}).fetchone()
            return rows.task_from_json(found[0]) if found else None
        return await self._run(run)

    async def move_task_list(self, source_queue_id: int) -> list[MoveTask]:
        """Tasks of a source queue, newest first."""
        return await self._run(lambda db: [
            rows.task_from_json(r[0]) for r in db.execute(
                Q["move_task_list"], {"source_queue_id": source_queue_id})])
