"""The delivery view as a broker operation (`broker.deliveries`): a notification's timeline
and counts per channel and status over time.

Both are read from what the ledger's triggers record as its rows change (migrations 0020 and 0025):
nothing here writes on the delivery path. Inputs are checked here, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.broker import channels
from conveyor.errors import InvalidInput
from conveyor.ledger import DELIVERY_STATUSES, Delivery
from conveyor.storage.base import DeliverySeriesParams
from conveyor.timeline import SERIES_STEP_MS, Series, TimelineEntry, series_of, timeline

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["MAX_BUCKETS", "SERIES_KEEP_MS", "DeliveryView"]

MAX_BUCKETS = 1440
"""Buckets in one series answer (a day of minutes)."""
SERIES_KEEP_MS = 7 * 86_400_000
"""How long counts are kept: the ledger's default keep time."""
_SWEEP_BATCH = 10_000
_ORDER = {s: i for i, s in enumerate(DELIVERY_STATUSES)}


class DeliveryView:
    """Timelines and counts over time (`broker.deliveries`)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def timeline(self, delivery_id: str
                       ) -> tuple[Delivery, list[TimelineEntry]] | None:
        """A notification's row and its timeline, or None when unknown or expired."""
        row = await self._broker.ledger.get(delivery_id)  # checks the id
        if row is None:
            return None
        events = await self._broker.storage.delivery_event_list(delivery_id)
        return row, timeline(row, events)

    async def series(self, bucket_seconds: int = 60, minutes: int = 60,
                     channel: str | None = None, until: int | None = None) -> Series:
        """How many notifications entered each status per bucket of `bucket_seconds` (a
        multiple of 10), by channel, over the last `minutes` (up to `until`, ms). An
        unknown `channel` is `InvalidInput` (`conveyor.broker.channels`)."""
        if isinstance(bucket_seconds, bool) or not isinstance(bucket_seconds, int) or \
                not 10 <= bucket_seconds <= 86_400 or bucket_seconds % 10:
            raise InvalidInput("bucket must be a multiple of 10 seconds, from 10 to 86400.",
                               field="bucket")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or \
                not 1 <= minutes <= SERIES_KEEP_MS // 60_000:
            raise InvalidInput(f"minutes must be between 1 and {SERIES_KEEP_MS // 60_000}.",
                               field="minutes")
        if minutes * 60 // bucket_seconds > MAX_BUCKETS:
            raise InvalidInput(f"That is more than {MAX_BUCKETS} buckets: take longer "
                               "buckets or fewer minutes.", field="bucket")
        if channel is not None:
            await channels.check_channel(self._broker, channel)
        end = self._broker.wall_now() if until is None else until
        width = bucket_seconds * 1000
        since = (end - minutes * 60_000) // width * width + width
        rows = await self._broker.storage.delivery_series(
            DeliverySeriesParams(since, end // SERIES_STEP_MS * SERIES_STEP_MS + 1, channel))
        return series_of(rows, bucket_seconds, since, end + 1, _ORDER)

    async def expire(self, now: int | None = None) -> int:
        """Delete counts older than `SERIES_KEEP_MS` (events go with their ledger rows);
        called by `Broker.sweep`."""
        at = self._broker.wall_now() if now is None else now
        removed = 0
        while (n := await self._broker.storage.delivery_series_expire(
                at - SERIES_KEEP_MS, _SWEEP_BATCH)):
            removed += n
            if n < _SWEEP_BATCH:
                break
        return removed
