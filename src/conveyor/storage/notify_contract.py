"""The notification path's part of the storage contract (`conveyor.storage.base.Storage`
joins it with the rest): the delivery ledger and suppression list, the notification path's
combined writes, the delivery view's events and counts, recipients, stored templates, and
digests with the messages held for quiet hours.

The conventions are the contract's (see `conveyor.storage.base`): noun-first methods,
times in milliseconds since the epoch, `now=None` for the database's own clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from conveyor.digests import Digest, DigestEvent
from conveyor.ledger import Delivery, DeliveryUpdate, NewDelivery, Suppression
from conveyor.locales import LocalizedTemplate
from conveyor.models import SendResult
from conveyor.recipients import Recipient
from conveyor.storage.params import (
    DeliveryPutParams,
    DeliverySeriesParams,
    DigestAddParams,
    HoldRow,
    Lease,
    MessageSendParams,
)
from conveyor.timeline import DeliveryEvent, SeriesCount

__all__ = [
    "DeliveryEventStorage",
    "DigestStorage",
    "LedgerStorage",
    "NotifyTxStorage",
    "RecipientStorage",
    "TemplateStorage",
]


class LedgerStorage(Protocol):
    """Delivery rows and the suppression list (see `conveyor.broker.ledger`). Each call is
    one transaction."""

    async def delivery_put_many(self, params: DeliveryPutParams) -> list[bool]:
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


class NotifyTxStorage(Protocol):
    """The notification path's combined writes (`broker.ledger.record_send` and
    `finish_ack`): two operations' statements in one transaction where that saves a turn
    of the database."""

    async def delivery_put_send(self, put: DeliveryPutParams, send: MessageSendParams
                                ) -> tuple[list[bool], list[SendResult]]:
        """When no row of `put` is recorded: record them all and send the batch (a
        standard queue's, without deduplication ids or claims) in one transaction, and
        return (all True, the send's results). Otherwise write nothing and return which
        rows are new, and no results."""

    async def delivery_finish_delete(self, updates: Sequence[DeliveryUpdate],
                                     now: int | None, queue_id: int,
                                     leases: Sequence[Lease]) -> set[Lease]:
        """Record outcomes, then delete the messages whose leases still hold (the deleted
        ones are returned); never the deletes without the outcomes."""

    async def delivery_finish_begin(self, updates: Sequence[DeliveryUpdate],
                                    rows: Sequence[NewDelivery], keep_ms: int,
                                    now: int | None) -> list[str | None]:
        """`delivery_finish_many` of `updates` and `delivery_begin_many` of other rows
        (no id in both) in one transaction; returns what the begin returns."""


class DeliveryEventStorage(Protocol):
    """The delivery view (see `conveyor.broker.delivery_view`): events and counts that the
    triggers of migrations 0020 and 0025 write as ledger rows change; read here."""

    async def delivery_event_list(self, delivery_id: str) -> list[DeliveryEvent]:
        """A notification's stored events, oldest first (none once its row is gone)."""

    async def delivery_series(self, params: DeliverySeriesParams) -> list[SeriesCount]:
        """Stored counts of the buckets in the window, by bucket, channel and status."""

    async def delivery_series_expire(self, before: int, limit: int) -> int:
        """Delete up to `limit` counts of buckets that start before `before`."""


class RecipientStorage(Protocol):
    """Recipients (see `conveyor.broker.recipients`): one row per person, checked by the
    broker before it gets here."""

    async def recipient_put_many(self, recipients: Sequence[Recipient],
                                 now: int | None) -> None:
        """Insert or replace recipients (ids unique within the batch) in one transaction."""

    async def recipient_get(self, recipient_id: str) -> Recipient | None:
        """One recipient by id."""

    async def recipient_delete(self, recipient_id: str) -> bool:
        """Delete a recipient; True when it existed."""

    async def recipient_count(self) -> int:
        """How many recipients are stored."""

    async def recipient_page(self, after: str | None, limit: int) -> list[Recipient]:
        """Up to `limit` recipients in id order, after the id `after` (None: from the
        first): a segment notified in bulk reads its people page by page."""

    async def recipient_delivery_add_many(self, rows: Sequence[tuple[str, str]],
                                          keep_ms: int, now: int | None) -> None:
        """Link (recipient id, delivery id) pairs, kept for `keep_ms`; a pair already
        linked keeps its link."""

    async def recipient_delivery_list(self, recipient_id: str, limit: int,
                                      now: int | None) -> list[Delivery]:
        """The recipient's unexpired delivery rows, newest link first."""

    async def recipient_delivery_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` expired links."""


class TemplateStorage(Protocol):
    """Templates per locale (see `conveyor.broker.templates`): one row per template,
    checked by the broker before it gets here."""

    async def template_put(self, template: LocalizedTemplate, now: int | None) -> int:
        """Insert or replace a template; returns its `updated_at`."""

    async def template_get(self, name: str) -> LocalizedTemplate | None:
        """One template by name."""

    async def template_delete(self, name: str) -> bool:
        """Delete a template; True when it existed."""

    async def template_list(self, after: str, limit: int) -> list[LocalizedTemplate]:
        """Up to `limit` templates whose names sort after `after` (byte order)."""


class DigestStorage(Protocol):
    """Digests (a recipient's events merged per key until a window ends) and the queue
    messages held for quiet hours, whose release a change of quiet hours moves."""

    async def digest_add(self, params: DigestAddParams) -> tuple[Digest | None, bool]:
        """Add an event to the open digest of (recipient, key), opening one when none is
        open, in one transaction; returns the digest and whether the event was new."""

    async def digest_claim(self, now: int | None, lease_ms: int, limit: int) -> list[Digest]:
        """Lease due digests (or ones whose releaser's lease lapsed) for release."""

    async def digest_events(self, digest_id: str) -> list[DigestEvent]:
        """A digest's events, oldest first."""

    async def digest_finish(self, digest_id: str, lease_until: int) -> bool:
        """Delete a released digest and its events if that lease still holds it."""

    async def digest_list(self, recipient_id: str) -> list[Digest]:
        """A recipient's digests not yet released."""

    async def hold_add_many(self, rows: Sequence[HoldRow]) -> None:
        """Remember queue messages held for a recipient's quiet hours."""

    async def hold_retime(self, recipient_id: str, release_at: int, now: int | None) -> int:
        """Move a recipient's held messages not yet released to `release_at`."""

    async def hold_expire(self, now: int | None, limit: int) -> int:
        """Forget holds whose release time passed."""
