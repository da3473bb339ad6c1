"""SQLite half of the API keys: a mixin of `SqliteStorage`."""

from __future__ import annotations

import sqlite3

from conveyor.keys import ApiKey, key_from_row
from conveyor.storage.base import ApiKeyInsertParams
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase

Q = load_queries("conveyor.storage.sqlite", "keys.sql")


class SqliteKeys(SqliteBase):
    """API keys in SQLite."""

    async def api_key_insert(self, params: ApiKeyInsertParams) -> bool:
        """Store a key; False when an active key already has the name (or the id is taken)."""
        args = {"id": params.key_id, "name": params.name, "token_hash": params.token_hash,
                "grants": params.grants, "secret": params.secret,
                "now": self._now(params.now)}

        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                return db.execute(Q["api_key_insert"], args).fetchone() is not None
        return await self._run(run)

    async def api_key_by_hash(self, token_hash: str) -> ApiKey | None:
        """The active key with this token hash."""
        def run(db: sqlite3.Connection) -> ApiKey | None:
            row = db.execute(Q["api_key_by_hash"], {"token_hash": token_hash}).fetchone()
            return key_from_row(row) if row else None
        return await self._run(run)

    async def api_key_by_id(self, key_id: str) -> tuple[ApiKey, str | None] | None:
        """The active key with this id and its SigV4 secret (None: made before secrets)."""
        def run(db: sqlite3.Connection) -> tuple[ApiKey, str | None] | None:
            row = db.execute(Q["api_key_by_id"], {"key_id": key_id}).fetchone()
            if row is None:
                return None
            return key_from_row(row[:5]), None if row[5] is None else str(row[5])
        return await self._run(run)

    async def api_key_list(self) -> list[ApiKey]:
        """Every key, revoked ones too."""
        return await self._run(
            lambda db: [key_from_row(r) for r in db.execute(Q["api_key_list"])])

    async def api_key_revoke(self, name: str, now: int | None) -> int:
        """Revoke the active key of this name (or id); how many were revoked."""
        params = {"name": name, "now": self._now(now)}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return len(db.execute(Q["api_key_revoke"], params).fetchall())
        return await self._run(run)

    async def api_key_count(self) -> int:
        """How many keys were ever made (revoked ones too)."""
        return await self._run(
            lambda db: int(db.execute(Q["api_key_count"]).fetchone()[0]))
