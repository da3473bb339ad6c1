"""PostgreSQL half of the API keys: a mixin of `PostgresStorage`."""

from __future__ import annotations

from conveyor.keys import ApiKey, key_from_row
from conveyor.storage.base import ApiKeyInsertParams
from conveyor.storage.postgres.postgres_base import PostgresBase, translated
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "keys.sql")


class PostgresKeys(PostgresBase):
    """API keys in PostgreSQL."""

    async def api_key_insert(self, params: ApiKeyInsertParams) -> bool:
        """Store a key; False when an active key already has the name (or the id is taken)."""
        with translated():
            row = await self.pool.fetchrow(Q["api_key_insert"], params.key_id, params.name,
                                           params.token_hash, params.grants, params.now,
                                           params.secret)
        return row is not None

    async def api_key_by_id(self, key_id: str) -> tuple[ApiKey, str | None] | None:
        """The active key with this id and its SigV4 secret (None: made before secrets)."""
        with translated():
            row = await self.pool.fetchrow(Q["api_key_by_id"], key_id)
        if row is None:
            return None
        values = tuple(row)
        return key_from_row(values[:5]), None if values[5] is None else str(values[5])

    async def api_key_by_hash(self, token_hash: str) -> ApiKey | None:
        """The active key with this token hash."""
        with translated():
            row = await self.pool.fetchrow(Q["api_key_by_hash"], token_hash)
        return key_from_row(tuple(row)) if row else None

    async def api_key_list(self) -> list[ApiKey]:
        """Every key, revoked ones too."""
        with translated():
            rows = await self.pool.fetch(Q["api_key_list"])
        return [key_from_row(tuple(r)) for r in rows]

    async def api_key_revoke(self, name: str, now: int | None) -> int:
        """Revoke the active key of this name (or id); how many were revoked."""
        with translated():
            return len(await self.pool.fetch(Q["api_key_revoke"], name, now))

    async def api_key_count(self) -> int:
        """How many keys were ever made (revoked ones too)."""
        with translated():
            return int(await self.pool.fetchval(Q["api_key_count"]))
