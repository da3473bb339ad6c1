"""Values of the delivery ledger: one row per notification, and the suppression list.

Pure data, like `conveyor.jobs`; `broker.ledger` returns them and the storage dialects build
them. The ledger is what makes a notification go out at most once per delivery id even when
its queue message is delivered again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["DELIVERY_STATUSES", "FINAL_STATUSES", "Delivery", "DeliveryUpdate",
           "NewDelivery", "Suppression"]

DELIVERY_STATUSES = ("queued", "held", "sending", "sent", "retrying", "failed", "unknown",
                     "skipped", "digested")
"""Every status a notification can be in. `sending`: handed to a provider, answer not yet
recorded (a row left `sending` by a worker that died is in doubt); `unknown`: in doubt and
held for an operator rather than resent (a channel configured so); `held`: queued with a
delay until the recipient's quiet hours end; `skipped`: never queued, the reason in
`error` (opted out, suppressed, no address); `digested`: merged into a digest, never sent
on its own (the digest's message is a notification of its own)."""

FINAL_STATUSES = frozenset({"sent", "failed", "unknown", "skipped", "digested"})
"""Statuses after which a notification is never handed to a provider again."""


class NewDelivery(NamedTuple):
    """A notification to record: its delivery id, channel and recipient."""

    delivery_id: str
    channel: str
    recipient: str


class DeliveryUpdate(NamedTuple):
    """The outcome of one provider call: the new status, the error or the provider's id."""

    delivery_id: str
    status: str
    error: str | None = None
    provider_id: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A notification's recorded state (times in ms since the epoch)."""

    delivery_id: str
    channel: str
    recipient: str
    status: str
    attempts: int
    error: str | None
    provider_id: str | None
    updated_at: int
    expires_at: int
    resends: int = 0
    """Times it was handed to the provider again after an attempt left in doubt by a
    crash (each possibly a second copy, carrying the same idempotency handle)."""


@dataclass(frozen=True, slots=True)
class Suppression:
    """An address (or push endpoint) that a channel skips: hard bounce, unsubscribe, gone."""

    channel: str
    address: str
    reason: str
    created_at: int
