"""PostgreSQL half of job cancel requests, on a pooled connection.

A mixin of `PostgresStorage`.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.storage.postgres.postgres_base import PostgresBase
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "cancels.sql")


class PostgresCancels(PostgresBase):
    """Cancel requests in PostgreSQL."""

    async def cancel_put(self, job_id: str, keep_ms: int, now: int | None) -> None:
        """Upsert the request."""
        await self._execute(Q["cancel_put"], job_id, keep_ms, now)

    async def cancel_find(self, job_ids: Sequence[str], now: int | None) -> list[str]:
        """The requested ones among these ids."""
        return [r[0] for r in await self._fetch(Q["cancel_find"], list(job_ids), now)]

    async def cancel_expire(self, now: int | None, limit: int) -> int:
        """Delete expired requests."""
        return await self._execute(Q["cancel_expire"], now, limit)
