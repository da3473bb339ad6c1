"""PostgreSQL half of worker heartbeats: one upsert per beat, on a pooled connection.

A mixin of `PostgresStorage`.
"""

from __future__ import annotations

from conveyor.heartbeats import WorkerInfo
from conveyor.storage.base import WorkerPutParams
from conveyor.storage.postgres.postgres_base import PostgresBase
from conveyor.storage.rows import worker_from_row
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "workers.sql")


class PostgresWorkers(PostgresBase):
    """Worker heartbeat rows in PostgreSQL."""

    async def worker_put(self, params: WorkerPutParams) -> None:
        """Upsert the row (see workers.sql)."""
        p = params
        await self._execute(Q["worker_put"], p.worker_id, p.host, p.pid, p.queues,
                            p.concurrency, p.running, p.detail, p.ttl_ms, p.now)

    async def worker_list(self, now: int | None) -> list[WorkerInfo]:
        """Unexpired workers."""
        return [worker_from_row(r) for r in await self._fetch(Q["worker_list"], now)]

    async def worker_delete(self, worker_id: str) -> bool:
        """Forget one worker."""
        return await self._execute(Q["worker_delete"], worker_id) > 0

    async def worker_expire(self, now: int | None, limit: int) -> int:
        """Delete expired rows."""
        return await self._execute(Q["worker_expire"], now, limit)
