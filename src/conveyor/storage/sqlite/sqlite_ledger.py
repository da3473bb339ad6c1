"""SQLite half of the delivery ledger and suppression list: a mixin of `SqliteStorage`.

Each batch is one `BEGIN IMMEDIATE` transaction run in the storage's thread (one writer
across every process sharing the file), so reading the previous statuses and marking the
rows `sending` cannot interleave with another worker doing the same.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from conveyor.ledger import Delivery, DeliveryUpdate, NewDelivery, Suppression
from conveyor.storage.base import DeliveryPutParams
from conveyor.storage.rows import counts_by_channel, delivery_from_row
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase

Q = load_queries("conveyor.storage.sqlite", "ledger.sql")


def _json(values: object) -> str:
    return orjson.dumps(values).decode()


def statuses(db: sqlite3.Connection, ids: str) -> dict[str, str]:
    """The recorded statuses of a JSON array of ids (one statement, one row)."""
    found: dict[str, str] = orjson.loads(db.execute(Q["delivery_statuses"], (ids,))
                                         .fetchone()[0])
    return found


def put_rows(db: sqlite3.Connection, rows: Sequence[NewDelivery], status: str, at: int,
             keep_ms: int) -> int:
    """Insert rows not recorded yet, one statement (inside the caller's transaction);
    returns how many were inserted."""
    return int(db.execute(Q["delivery_put_many"], {
        "rows": _json([(r[0], r[1], r[2]) for r in rows]), "status": status, "now": at,
        "expires_at": at + keep_ms}).rowcount)


def begin_rows(db: sqlite3.Connection, rows: Sequence[NewDelivery], at: int, keep_ms: int
               ) -> dict[str, str]:
    """The rows' statuses before, then the unfinished ones marked `sending` (ids not
    repeated; inside the caller's transaction)."""
    ids = _json([r[0] for r in rows])
    before = statuses(db, ids)
    db.execute(Q["delivery_begin_many"], {
        "rows": _json([(r[0], r[1], r[2]) for r in rows]), "now": at,
        "expires_at": at + keep_ms})
    return before


def finish_rows(db: sqlite3.Connection, updates: Sequence[DeliveryUpdate], at: int) -> None:
    """Record outcomes, ids not repeated (inside the caller's transaction)."""
    if updates:
        db.execute(Q["delivery_finish_many"], {
            "updates": _json([(u[1], u[2], u[3], u[0]) for u in updates]), "now": at})


class SqliteLedger(SqliteBase):
    """Delivery rows and suppressions in SQLite."""

    async def delivery_put_many(self, params: DeliveryPutParams) -> list[bool]:
        """Insert new rows; existing ids are left as they are."""
        at = self._now(params.now)
        rows = params.rows
        ids = _json([r[0] for r in rows])

        def run(db: sqlite3.Connection) -> list[bool]:
            with self._write(db):
                known = set(statuses(db, ids))
                put_rows(db, rows, params.status, at, params.keep_ms)
            new: list[bool] = []
            for r in rows:
                new.append(r[0] not in known)
                known.add(r[0])
            return new
        return await self._run(run)

    async def delivery_statuses(self, ids: Sequence[str]) -> list[str | None]:
        """Each id's status (None: not recorded), without writing."""
        listed = _json(list(ids))

        def run(db: sqlite3.Connection) -> list[str | None]:
            found = statuses(db, listed)
            return [found.get(i) for i in ids]
        return await self._run(run)

    async def delivery_begin_many(self, rows: Sequence[NewDelivery], keep_ms: int,
                                  now: int | None) -> list[str | None]:
        """Read the previous statuses, then mark the unfinished rows `sending`."""
        at = self._now(now)

        def run(db: sqlite3.Connection) -> list[str | None]:
            with self._write(db):
                before = begin_rows(db, rows, at, keep_ms)
            return [before.get(r[0]) for r in rows]
        return await self._run(run)

    async def delivery_finish_many(self, updates: Sequence[DeliveryUpdate],
                                   now: int | None) -> None:
        """Record outcomes in one transaction."""
        at = self._now(now)

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                finish_rows(db, updates, at)
        await self._run(run)

    async def delivery_get(self, delivery_id: str, now: int | None) -> Delivery | None:
        """One unexpired row."""
        params = {"id": delivery_id, "now": self._now(now)}

        def run(db: sqlite3.Connection) -> Delivery | None:
            row = db.execute(Q["delivery_get"], params).fetchone()
            return delivery_from_row(row) if row else None
        return await self._run(run)

    async def delivery_counts(self, channel: str | None, now: int | None
                              ) -> dict[str, dict[str, int]]:
        """Unexpired rows by channel and status."""
        params = {"channel": channel, "now": self._now(now)}

        return await self._run(
            lambda db: counts_by_channel(db.execute(Q["delivery_counts"], params)))

    async def delivery_resent_counts(self, channel: str | None, now: int | None
                                     ) -> dict[str, int]:
        """Unexpired rows resent after a crash, by channel."""
        params = {"channel": channel, "now": self._now(now)}
        return await self._run(lambda db: {
            str(ch): int(n) for ch, n in db.execute(Q["delivery_resent_counts"], params)})

    async def delivery_expire(self, now: int | None, limit: int) -> int:
        """Delete expired rows."""
        params = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["delivery_expire"], params).rowcount
        return await self._run(run)

    async def suppression_add_many(self, rows: Sequence[tuple[str, str, str]],
                                   now: int | None) -> None:
        """Add rows; listed addresses keep their first reason."""
        at = self._now(now)
        values = [(c, a, r, at) for c, a, r in rows]

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.executemany(Q["suppression_add_many"], values)
        await self._run(run)

    async def suppression_find(self, channel: str, addresses: Sequence[str]) -> set[str]:
        """The listed ones among `addresses`."""
        params = (channel, orjson.dumps(list(addresses)).decode())
        return await self._run(lambda db: {
            str(r[0]) for r in db.execute(Q["suppression_find"], params)})

    async def suppression_remove(self, channel: str, address: str) -> bool:
        """Delete one row."""
        params = {"channel": channel, "address": address}

        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                return db.execute(Q["suppression_remove"], params).rowcount > 0
        return await self._run(run)

    async def suppression_list(self, channel: str | None, after: str | None,
                               limit: int) -> list[Suppression]:
        """A page of rows."""
        params = {"channel": channel, "after": after, "limit": limit}
        return await self._run(lambda db: [
            Suppression(str(c), str(a), str(r), int(t))
            for c, a, r, t in db.execute(Q["suppression_list"], params)])

