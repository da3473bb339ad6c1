"""The delivery ledger's part of the Storage protocol (see `conveyor.broker.ledger`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from conveyor.ledger import Delivery, DeliveryUpdate, NewDelivery, Suppression


class LedgerStorage(Protocol):
    """Delivery rows and the suppression list. Each call is one transaction."""

    async def delivery_put_many(self, rows: Sequence[NewDelivery], status: str, keep_ms: int,
                                now: int | None) -> list[bool]:
        """Insert rows with `status` (usually `queued`); ids already recorded keep theirs.
        Returns, per row, whether it was new."""

    async def delivery_statuses(self, ids: Sequence[str]) -> list[str | None]:
        """Each id's status (None: not recorded), in order, without writing."""

    async def delivery_begin_many(self, rows: Sequence[NewDelivery], keep_ms: int,
                                  now: int | None) -> list[str | None]:
        """Mark rows `sending` (one more attempt; a row already `sending` also one more
        resend), except those in a final status; returns each row's status before the
        call (None: not recorded), in order."""

    async def delivery_finish_many(self, updates: Sequence[DeliveryUpdate],
                                   now: int | None) -> None:
        """Record outcomes."""

    async def delivery_get(self, delivery_id: str, now: int | None) -> Delivery | None:
        """One unexpired row."""

    async def delivery_counts(self, channel: str | None, now: int | None
                              ) -> dict[str, dict[str, int]]:
        """Unexpired rows by channel, then status."""

    async def delivery_resent_counts(self, channel: str | None, now: int | None
                                     ) -> dict[str, int]:
        """Unexpired rows resent after a crash (`resends` > 0), by channel."""

    async def delivery_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` expired rows."""

    async def suppression_add_many(self, rows: Sequence[tuple[str, str, str]],
                                   now: int | None) -> None:
        """Add (channel, address, reason) rows; an address already listed keeps its row."""

    async def suppression_find(self, channel: str, addresses: Sequence[str]) -> set[str]:
        """Which of `addresses` the channel suppresses."""

    async def suppression_remove(self, channel: str, address: str) -> bool:
        """Take an address off the list; True when it was there."""

    async def suppression_list(self, channel: str | None, after: str | None,
                               limit: int) -> list[Suppression]:
        """Listed addresses by (channel, address)."""
