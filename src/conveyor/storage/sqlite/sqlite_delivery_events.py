"""SQLite half of the delivery view: a notification's events and the counts over time,
written by the triggers of migrations 0020 and 0025 (and the row itself: see
delivery_event_list) and read here (a mixin of `SqliteStorage`)."""

from __future__ import annotations

import sqlite3

from conveyor.storage.params import DeliverySeriesParams
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase
from conveyor.timeline import DeliveryEvent, SeriesCount

Q = load_queries("conveyor.storage.sqlite", "delivery_events.sql")


class SqliteDeliveryEvents(SqliteBase):
    """Delivery events and counts in SQLite."""

    async def delivery_event_list(self, delivery_id: str) -> list[DeliveryEvent]:
        """A notification's events, oldest first."""
        params = {"id": delivery_id}
        return await self._run(lambda db: [
            DeliveryEvent(*row) for row in db.execute(Q["delivery_event_list"], params)])

    async def delivery_series(self, params: DeliverySeriesParams) -> list[SeriesCount]:
        """Stored counts in the window."""
        args = {"since": params.since, "until": params.until, "channel": params.channel}
        return await self._run(lambda db: [
            SeriesCount(*row) for row in db.execute(Q["delivery_series"], args)])

    async def delivery_series_expire(self, before: int, limit: int) -> int:
        """Delete up to `limit` counts of buckets before `before`."""
        args = {"before": before, "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["delivery_series_expire"], args).rowcount
        return await self._run(run)
