"""PostgreSQL half of the delivery ledger and suppression list: a mixin of
`PostgresStorage`. One statement per batch, arrays in, no session state."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.ledger import Delivery, DeliveryUpdate, NewDelivery, Suppression
from conveyor.storage.base import DeliveryPutParams
from conveyor.storage.postgres.postgres_base import PostgresBase, translated
from conveyor.storage.rows import counts_by_channel, delivery_from_row
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "ledger.sql")


class PostgresLedger(PostgresBase):
    """Delivery rows and suppressions in PostgreSQL."""

    async def delivery_put_many(self, params: DeliveryPutParams) -> list[bool]:
        """Insert new rows; existing ids are left as they are."""
        rows = params.rows
        with translated():
            found = await self.pool.fetch(Q["delivery_put_many"], [r[0] for r in rows],
                                          [r[1] for r in rows], [r[2] for r in rows],
                                          params.status, params.keep_ms, params.now)
        inserted = {r[0] for r in found}
        new: list[bool] = []
        for r in rows:
            new.append(r[0] in inserted)
            inserted.discard(r[0])
        return new

    async def delivery_statuses(self, ids: Sequence[str]) -> list[str | None]:
        """Each id's status (None: not recorded), without writing."""
        with translated():
            found = await self.pool.fetch(Q["delivery_statuses"], list(ids))
        return [r[0] for r in found]

    async def delivery_begin_many(self, rows: Sequence[NewDelivery], keep_ms: int,
                                  now: int | None) -> list[str | None]:
        """Previous statuses; unfinished rows become `sending`."""
        with translated():
            found = await self.pool.fetch(Q["delivery_begin_many"], [r[0] for r in rows],
                                          [r[1] for r in rows], [r[2] for r in rows],
                                          keep_ms, now)
        return [r[0] for r in found]

    async def delivery_finish_many(self, updates: Sequence[DeliveryUpdate],
                                   now: int | None) -> None:
        """Record outcomes."""
        with translated():
            await self.pool.execute(Q["delivery_finish_many"], [u[0] for u in updates],
                                    [u[1] for u in updates], [u[2] for u in updates],
                                    [u[3] for u in updates], now)

    async def delivery_get(self, delivery_id: str, now: int | None) -> Delivery | None:
        """One unexpired row."""
        with translated():
            row = await self.pool.fetchrow(Q["delivery_get"], delivery_id, now)
        return delivery_from_row(row) if row else None

    async def delivery_counts(self, channel: str | None, now: int | None
                              ) -> dict[str, dict[str, int]]:
        """Unexpired rows by channel and status."""
        with translated():
            found = await self.pool.fetch(Q["delivery_counts"], channel, now)
        return counts_by_channel(found)

    async def delivery_resent_counts(self, channel: str | None, now: int | None
                                     ) -> dict[str, int]:
        """Unexpired rows resent after a crash, by channel."""
        with translated():
            found = await self.pool.fetch(Q["delivery_resent_counts"], channel, now)
        return {str(ch): int(n) for ch, n in found}

    async def delivery_expire(self, now: int | None, limit: int) -> int:
        """Delete expired rows."""
        with translated():
            status: str = await self.pool.execute(Q["delivery_expire"], now, limit)
        return int(status.rsplit(" ", 1)[-1])

    async def suppression_add_many(self, rows: Sequence[tuple[str, str, str]],
                                   now: int | None) -> None:
        """Add rows; listed addresses keep their first reason."""
        with translated():
            await self.pool.execute(Q["suppression_add_many"], [r[0] for r in rows],
                                    [r[1] for r in rows], [r[2] for r in rows], now)

    async def suppression_find(self, channel: str, addresses: Sequence[str]) -> set[str]:
        """The listed ones among `addresses`."""
        with translated():
            found = await self.pool.fetch(Q["suppression_find"], channel, list(addresses))
        return {str(r[0]) for r in found}

    async def suppression_remove(self, channel: str, address: str) -> bool:
        """Delete one row."""
        with translated():
            status: str = await self.pool.execute(Q["suppression_remove"], channel, address)
        return status.endswith(" 1")

    async def suppression_list(self, channel: str | None, after: str | None,
                               limit: int) -> list[Suppression]:
        """A page of rows."""
        with translated():
            found = await self.pool.fetch(Q["suppression_list"], channel, after, limit)
        return [Suppression(r[0], r[1], r[2], int(r[3])) for r in found]
