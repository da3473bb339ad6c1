"""PostgreSQL half of the delivery view: a notification's events and the counts over time,
written by the triggers of migrations 0020 and 0025 (and the row itself: see
delivery_event_list) and read here (a mixin of `PostgresStorage`)."""

from __future__ import annotations

from conveyor.storage.params import DeliverySeriesParams
from conveyor.storage.postgres.postgres_base import PostgresBase, translated
from conveyor.storage.sql import load_queries
from conveyor.timeline import DeliveryEvent, SeriesCount

Q = load_queries("conveyor.storage.postgres", "delivery_events.sql")


class PostgresDeliveryEvents(PostgresBase):
    """Delivery events and counts in PostgreSQL."""

    async def delivery_event_list(self, delivery_id: str) -> list[DeliveryEvent]:
        """A notification's events, oldest first."""
        with translated():
            found = await self.pool.fetch(Q["delivery_event_list"], delivery_id)
        return [DeliveryEvent(*row) for row in found]

    async def delivery_series(self, params: DeliverySeriesParams) -> list[SeriesCount]:
        """Stored counts in the window."""
        with translated():
            found = await self.pool.fetch(Q["delivery_series"], params.since, params.until,
                                          params.channel)
        return [SeriesCount(int(b), c, s, int(n)) for b, c, s, n in found]

    async def delivery_series_expire(self, before: int, limit: int) -> int:
        """Delete up to `limit` counts of buckets before `before`."""
        with translated():
            status: str = await self.pool.execute(Q["delivery_series_expire"], before, limit)
        return int(status.rsplit(" ", 1)[-1])
