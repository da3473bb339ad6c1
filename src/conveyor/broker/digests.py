"""Digests and quiet-hour holds as a broker operation (`broker.digests`).

A digest collects a recipient's events for a key in the database until its window ends
(`add`); releasers lease the due ones (`claim`), send them and `finish` them. A lease
that lapses (the releaser died) hands the digest to another releaser, so a crash loses
none; what a releaser sends carries ids made from the digest's, so a second release
sends nothing new (`conveyor.notify.digests`).

Holds: queue messages delayed for a recipient's quiet hours are remembered (`hold`), so
that when the recipient's quiet hours or time zone change the release time is recomputed
and the messages not yet released move to it (`retime`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from conveyor.digests import (
    Digest,
    DigestEvent,
    DigestSpec,
    DigestTarget,
    parse_digest,
    targets_json,
)
from conveyor.errors import InvalidInput
from conveyor.recipients import Recipient, parse_recipient, quiet_release_at
from conveyor.storage.base import DigestAddParams, HoldRow

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["Digests"]

_EXPIRE_BATCH = 1000


class Digests:
    """Open, fill, claim and finish digests; hold and re-time held messages."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def add(self, recipient_id: str, spec: DigestSpec, category: str, template: str,
                  event_id: str, data: Mapping[str, Any], targets: Sequence[DigestTarget]
                  ) -> tuple[Digest | None, bool]:
        """Add one event to the recipient's open digest for `spec.key` (opening one for
        `spec.window` seconds when none is open), durably, in one transaction. Returns the
        digest and True, or for an event added before False and the digest that has it
        (None once that one was released)."""
        parse_recipient(recipient_id, {})
        checked = parse_digest(spec)
        assert checked is not None
        if not targets:
            raise InvalidInput("A digest event needs at least one address.", field="targets")
        if not isinstance(event_id, str) or not 1 <= len(event_id) <= 200:
            raise InvalidInput("An event id is 1 to 200 characters.", field="event_id")
        return await self._broker.storage.digest_add(DigestAddParams(
            str(uuid.uuid4()), recipient_id, checked.key, category, template,
            checked.window * 1000, event_id, orjson.dumps(dict(data)).decode(),
            targets_json(list(targets)), self._broker.now()))

    async def claim(self, limit: int = 100, lease_seconds: int = 60) -> list[Digest]:
        """Lease up to `limit` digests whose window ended (or whose releaser's lease
        lapsed) for `lease_seconds`."""
        if not 1 <= limit <= 1000 or not 1 <= lease_seconds <= 3600:
            raise InvalidInput("limit is 1 to 1000 and lease_seconds 1 to 3600.",
                               field="limit")
        return await self._broker.storage.digest_claim(self._broker.now(),
                                                       lease_seconds * 1000, limit)

    async def events(self, digest_id: str) -> list[DigestEvent]:
        """A digest's events, oldest first."""
        return await self._broker.storage.digest_events(digest_id)

    async def finish(self, digest: Digest) -> bool:
        """Forget a released digest (False: its lease lapsed and another releaser has it)."""
        return await self._broker.storage.digest_finish(digest.id, digest.lease_until)

    async def pending(self, recipient_id: str) -> list[Digest]:
        """A recipient's digests not yet released (open or being released)."""
        parse_recipient(recipient_id, {})
        return await self._broker.storage.digest_list(recipient_id)

    # quiet-hour holds ---------------------------------------------------------------
    async def hold(self, recipient_id: str, queue: str, message_ids: Sequence[str],
                   release_at: int) -> None:
        """Remember queue messages delayed until `release_at` for the recipient's quiet
        hours (so that `retime` can move them)."""
        if not message_ids:
            return
        queue_id = (await self._broker.queue(queue)).id
        await self._broker.storage.hold_add_many(
            [HoldRow(recipient_id, queue_id, m, release_at) for m in message_ids])

    async def retime(self, recipient: Recipient) -> int:
        """Recompute the release of the recipient's held messages from their quiet hours
        and time zone now (released at once when they allow it now); returns how many
        messages moved."""
        now = self._broker.wall_now()
        release = None
        if recipient.quiet_hours is not None:
            release = quiet_release_at(recipient.quiet_hours, recipient.zone, now)
        return await self._broker.storage.hold_retime(
            recipient.id, now if release is None else release, self._broker.now())

    async def expire(self) -> int:
        """Forget holds whose release time passed."""
        removed = 0
        while (n := await self._broker.storage.hold_expire(self._broker.now(),
                                                           _EXPIRE_BATCH)):
            removed += n
            if n < _EXPIRE_BATCH:
                break
        return removed
