"""SQLite half of the recipients table: a mixin of `SqliteStorage`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from conveyor.ledger import Delivery
from conveyor.recipients import Recipient
from conveyor.storage.rows import delivery_from_row, recipient_columns, recipient_from_row
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase

Q = load_queries("conveyor.storage.sqlite", "recipients.sql")


class SqliteRecipients(SqliteBase):
    """Recipients in SQLite."""

    async def recipient_put_many(self, recipients: Sequence[Recipient],
                                 now: int | None) -> None:
        """Upsert a batch in one `BEGIN IMMEDIATE` transaction."""
        at = self._now(now)
        values = [(*recipient_columns(r), at) for r in recipients]

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.executemany(Q["recipient_put_many"], values)
        await self._run(run)

    async def recipient_get(self, recipient_id: str) -> Recipient | None:
        """One recipient by id."""
        def run(db: sqlite3.Connection) -> Recipient | None:
            row = db.execute(Q["recipient_get"], {"id": recipient_id}).fetchone()
            return recipient_from_row(row) if row else None
        return await self._run(run)

    async def recipient_delete(self, recipient_id: str) -> bool:
        """Delete one row."""
        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                return db.execute(Q["recipient_delete"], {"id": recipient_id}).rowcount > 0
        return await self._run(run)

    async def recipient_count(self) -> int:
        """How many rows."""
        return await self._run(
            lambda db: int(db.execute(Q["recipient_count"]).fetchone()[0]))

    async def recipient_page(self, after: str | None, limit: int) -> list[Recipient]:
        """A page in id order."""
        params = {"after": after, "limit": limit}
        return await self._run(lambda db: [
            recipient_from_row(r) for r in db.execute(Q["recipient_page"], params)])

    async def recipient_delivery_add_many(self, rows: Sequence[tuple[str, str]],
                                          keep_ms: int, now: int | None) -> None:
        """Link pairs in one transaction."""
        at = self._now(now)
        values = [{"recipient_id": r, "delivery_id": d, "now": at, "expires_at": at + keep_ms}
                  for r, d in rows]

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.executemany(Q["recipient_delivery_add_many"], values)
        await self._run(run)

    async def recipient_delivery_list(self, recipient_id: str, limit: int,
                                      now: int | None) -> list[Delivery]:
        """The recipient's delivery rows, newest first."""
        params = {"recipient_id": recipient_id, "limit": limit, "now": self._now(now)}
        return await self._run(lambda db: [
            delivery_from_row(r) for r in db.execute(Q["recipient_delivery_list"], params)])

    async def recipient_delivery_expire(self, now: int | None, limit: int) -> int:
        """Delete expired links."""
        params = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["recipient_delivery_expire"], params).rowcount
        return await self._run(run)
