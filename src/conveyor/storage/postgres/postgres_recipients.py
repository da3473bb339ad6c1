"""PostgreSQL half of the recipients table: a mixin of `PostgresStorage`. One statement
per batch, arrays in."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.ledger import Delivery
from conveyor.recipients import Recipient
from conveyor.storage.postgres.postgres_base import PostgresBase
from conveyor.storage.rows import delivery_from_row, recipient_columns, recipient_from_row
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "recipients.sql")


class PostgresRecipients(PostgresBase):
    """Recipients in PostgreSQL."""

    async def recipient_put_many(self, recipients: Sequence[Recipient],
                                 now: int | None) -> None:
        """Upsert a batch in one statement."""
        if not recipients:
            return
        columns = list(zip(*(recipient_columns(r) for r in recipients)))
        await self._execute(Q["recipient_put_many"], *(list(c) for c in columns), now)

    async def recipient_get(self, recipient_id: str) -> Recipient | None:
        """One recipient by id."""
        row = await self._fetchrow(Q["recipient_get"], recipient_id)
        return recipient_from_row(row) if row else None

    async def recipient_delete(self, recipient_id: str) -> bool:
        """Delete one row."""
        return await self._execute(Q["recipient_delete"], recipient_id) > 0

    async def recipient_count(self) -> int:
        """How many rows."""
        row = await self._fetchrow(Q["recipient_count"])
        return int(row[0])

    async def recipient_page(self, after: str | None, limit: int) -> list[Recipient]:
        """A page in id order."""
        rows = await self._fetch(Q["recipient_page"], after, limit)
        return [recipient_from_row(r) for r in rows]

    async def recipient_delivery_add_many(self, rows: Sequence[tuple[str, str]],
                                          keep_ms: int, now: int | None) -> None:
        """Link pairs in one statement."""
        await self._execute(Q["recipient_delivery_add_many"], [r[0] for r in rows],
                            [r[1] for r in rows], keep_ms, now)

    async def recipient_delivery_list(self, recipient_id: str, limit: int,
                                      now: int | None) -> list[Delivery]:
        """The recipient's delivery rows, newest first."""
        found = await self._fetch(Q["recipient_delivery_list"], recipient_id, limit, now)
        return [delivery_from_row(r) for r in found]

    async def recipient_delivery_expire(self, now: int | None, limit: int) -> int:
        """Delete expired links."""
        return await self._execute(Q["recipient_delivery_expire"], now, limit)
