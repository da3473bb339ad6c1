"""SQLite half of job cancel requests, in the storage's thread.

A mixin of `SqliteStorage`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase

Q = load_queries("conveyor.storage.sqlite", "cancels.sql")


class SqliteCancels(SqliteBase):
    """Cancel requests in SQLite."""

    async def cancel_put(self, job_id: str, keep_ms: int, now: int | None) -> None:
        """Upsert the request."""
        at = self._now(now)
        args = {"job_id": job_id, "now": at, "expires_at": at + keep_ms}

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.execute(Q["cancel_put"], args)
        await self._run(run)

    async def cancel_find(self, job_ids: Sequence[str], now: int | None) -> list[str]:
        """The requested ones among these ids."""
        args = {"ids": orjson.dumps(list(job_ids)).decode(), "now": self._now(now)}
        return await self._run(lambda db: [r[0] for r in db.execute(Q["cancel_find"], args)])

    async def cancel_expire(self, now: int | None, limit: int) -> int:
        """Delete expired requests."""
        args = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["cancel_expire"], args).rowcount
        return await self._run(run)
