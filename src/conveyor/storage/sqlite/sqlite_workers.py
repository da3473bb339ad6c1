"""SQLite half of worker heartbeats: one upsert per beat, in the storage's thread.

A mixin of `SqliteStorage`.
"""

from __future__ import annotations

import sqlite3

from conveyor.heartbeats import WorkerInfo
from conveyor.storage.base import WorkerPutParams
from conveyor.storage.rows import worker_from_row
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase

Q = load_queries("conveyor.storage.sqlite", "workers.sql")


class SqliteWorkers(SqliteBase):
    """Worker heartbeat rows in SQLite."""

    async def worker_put(self, params: WorkerPutParams) -> None:
        """Upsert the row (see workers.sql)."""
        at = self._now(params.now)
        args = {"id": params.worker_id, "host": params.host, "pid": params.pid,
                "queues": params.queues, "concurrency": params.concurrency,
                "running": params.running, "detail": params.detail, "now": at,
                "expires_at": at + params.ttl_ms}

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.execute(Q["worker_put"], args)
        await self._run(run)

    async def worker_list(self, now: int | None) -> list[WorkerInfo]:
        """Unexpired workers."""
        args = {"now": self._now(now)}
        return await self._run(lambda db: [worker_from_row(r) for r in db.execute(
            Q["worker_list"], args)])

    async def worker_delete(self, worker_id: str) -> bool:
        """Forget one worker."""
        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                return db.execute(Q["worker_delete"], {"id": worker_id}).rowcount > 0
        return await self._run(run)

    async def worker_expire(self, now: int | None, limit: int) -> int:
        """Delete expired rows."""
        args = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["worker_expire"], args).rowcount
        return await self._run(run)
