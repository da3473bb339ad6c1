"""Digests for people: gather a recipient's notifications that carry a digest key into the
recipient's open digest (`gather`), and release each digest when its window ends as one
message per address (`release`, run by `DigestReleaser` in every delivery worker).

```python
await notify_recipient(notifier, PersonNotification(
    "ann", Category("comments"), "comments-digest", {"by": "bob"},
    digest={"key": "post-42", "window": "10m"}))
```
Preferences are applied per event (each event goes to the addresses its category allows
on the day it came); the ledger records each event `digested`. When the window ends the
releaser renders one message per address with `events` (each event's data, oldest first),
`count` and `digest_key`; it is `held` when the recipient's quiet hours (in their time zone,
read at release) are on, and re-timed like any held message when they change. Critical
categories never wait in a digest.

Crash safety: the events are rows in the database before `gather` answers; a releaser
leases a due digest, and one that dies leaves the lease to lapse and another releaser to
take it over. The digest's messages carry ids made from the digest's id, so a second
release records nothing new, and their envelopes carry a deduplication id (the broker's
5-minute window), so a release repeated after a crash enqueues nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.digests import Digest, DigestTarget, parse_digest
from conveyor.errors import ConveyorError
from conveyor.ledger import NewDelivery
from conveyor.models import Body, SendEntry
from conveyor.notify.delivery import dlq_name, queue_name
from conveyor.notify.models import Apns, Email, Envelope, Fcm, Item, WebPush, delivery_id, to_item
from conveyor.recipients import quiet_release_at

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker
    from conveyor.notify.notifier import Notifier
    from conveyor.notify.people import PersonNotification, Planned
    from conveyor.recipients import Recipient

__all__ = ["DigestReleaser", "gather", "release"]

log = logging.getLogger("conveyor.notify")
KEEP_SECONDS = 7 * 86_400


async def gather(notifier: Notifier, recipient: Recipient, n: PersonNotification,
                 planned: list[Planned], now_ms: int) -> list[Planned]:
    """Put the addresses `plan` queued or held into the recipient's digest for the key;
    returns the plan with those `digested` (until the digest's `release_at`)."""
    from conveyor.notify.people import Planned

    spec = parse_digest(n.digest)
    assert spec is not None
    targets = [p for p in planned if p.status != "skipped"]
    if not targets:
        return planned
    ids = sorted(p.delivery_id for p in targets)
    event_id = hashlib.blake2b("\x1f".join(ids).encode(), digest_size=16).hexdigest()
    digest, _ = await notifier.broker.digests.add(
        recipient.id, spec, n.category.name, n.template, event_id, n.data,
        [DigestTarget(p.channel, _subscription(recipient, p) if p.channel == "push"
                      else p.address, p.address) for p in targets])
    if notifier.track:
        by_channel: dict[str, list[NewDelivery]] = {}
        for p in targets:
            by_channel.setdefault(p.channel, []).append(
                NewDelivery(p.delivery_id, p.channel, p.address))
        for rows in by_channel.values():
            await notifier.broker.ledger.record(rows, status="digested",
                                                keep_seconds=notifier.keep_seconds)
    release_at = None if digest is None else digest.release_at
    return [Planned(p.channel, p.address, p.delivery_id, "digested", None, release_at, p.item)
            if p.status != "skipped" else p for p in planned]


def _subscription(recipient: Recipient, p: Planned) -> Any:
    """The Web Push subscription object behind an endpoint."""
    for a in recipient.addresses.get("push", ()):
        if a["endpoint"] == p.address:
            return a
    return p.address


def _item(channel: str, address: Any, key: str, template: str, data: dict[str, Any],
          digest_id: str, now_ms: int, locale: str | None) -> Item:
    """One digest message in the recipient's locale; its id is made from the digest's,
    so releasing again is a no-op in the ledger."""
    if channel == "email":
        item = to_item(Email(to=address, template=template, data=data), now_ms)
    elif channel == "push":
        item = to_item(WebPush(subscription=address, template=template, data=data), now_ms)
    elif channel == "fcm":
        item = to_item(Fcm(token=address, template=template, data=data), now_ms)
    else:
        item = to_item(Apns(token=address, template=template, data=data), now_ms)
    source = f"digest\x1f{digest_id}\x1f{key}"
    extra = item.extra if locale is None else {**item.extra, "locale": locale}
    return item._replace(id=delivery_id(channel, key, source, {}), extra=extra)


async def release(broker: Broker, digest: Digest, *, keep_seconds: int = KEEP_SECONDS
                  ) -> int:
    """Send one claimed digest: one message per address its events went to, held when
    the recipient's quiet hours are on; then forget the digest. Returns how many messages
    were enqueued now (0 when an earlier, interrupted release had enqueued them)."""
    now = broker.wall_now()
    events = await broker.digests.events(digest.id)
    recipient = await broker.recipients.get(digest.recipient_id)
    per_address: dict[tuple[str, str], tuple[Any, list[Any]]] = {}
    for event in events:
        for t in event.targets:
            per_address.setdefault((t.channel, t.key), (t.address, []))[1].append(event.data)
    hold_until = None
    if recipient is not None and recipient.quiet_hours is not None:
        hold_until = quiet_release_at(recipient.quiet_hours, recipient.zone, now)
    by_channel: dict[str, list[Item]] = {}
    for (channel, key), (address, datas) in per_address.items():
        data = {"events": datas, "count": len(datas), "digest_key": digest.key}
        by_channel.setdefault(channel, []).append(
            _item(channel, address, key, digest.template, data, digest.id, now,
                  None if recipient is None else recipient.locale))
    every = [i.id for items in by_channel.values() for i in items]
    for start in range(0, len(every), 1000):
        await broker.recipients.link(digest.recipient_id, every[start:start + 1000],
                                     keep_seconds=keep_seconds)
    sent = 0
    for channel, items in by_channel.items():
        sent += await _enqueue(broker, digest, channel, items, hold_until, now, keep_seconds)
    if not await broker.digests.finish(digest):
        log.warning("digest %s: the lease lapsed during its release; another releaser "
                    "has it (its messages are not enqueued twice)", digest.id)
    return sent


async def _enqueue(broker: Broker, digest: Digest, channel: str, items: Sequence[Item],
                   hold_until: int | None, now: int, keep_seconds: int) -> int:
    """Record and enqueue one channel's digest messages. A release repeated after a crash
    records nothing new and its envelope matches the first one's deduplication id."""
    status = "queued" if hold_until is None else "held"
    for start in range(0, len(items), 1000):
        await broker.ledger.record([NewDelivery(i.id, channel, i.to)
                                    for i in items[start:start + 1000]],
                                   status=status, keep_seconds=keep_seconds)
    statuses: list[str | None] = []
    for start in range(0, len(items), 1000):
        statuses += await broker.ledger.statuses([i.id for i in items[start:start + 1000]])
    waiting = [i for i, s in zip(items, statuses) if s in ("queued", "held")]
    if not waiting:
        return 0
    await broker.create_queue(dlq_name(channel), {"retention_seconds": 14 * 86400})
    await broker.create_queue(queue_name(channel))
    delay = None if hold_until is None else max(1, -(-(hold_until - now) // 1000))
    results = await broker.send(queue_name(channel), [SendEntry(
        Body(Envelope(channel, 0, list(waiting)).dumps()), delay,
        deduplication_id=f"digest-{digest.id}-{channel}")])
    if hold_until is not None:
        await broker.digests.hold(digest.recipient_id, queue_name(channel),
                                  [r.id for r in results], hold_until)
    return 0 if results[0].duplicate else len(waiting)


class DigestReleaser:
    """Releases due digests every `interval` seconds until stopped (a delivery worker runs
    one beside its lanes); also forgets holds whose time passed."""

    def __init__(self, broker: Broker, *, interval: float = 0.5, batch: int = 100,
                 lease_seconds: int = 60, keep_seconds: int = KEEP_SECONDS) -> None:
        self.broker = broker
        self.interval = interval
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.keep_seconds = keep_seconds
        self.released = 0
        self._expired_at = 0.0

    async def run_once(self) -> int:
        """Claim and release one batch of due digests; returns how many were released."""
        claimed = await self.broker.digests.claim(self.batch, self.lease_seconds)
        for digest in claimed:
            await release(self.broker, digest, keep_seconds=self.keep_seconds)
        self.released += len(claimed)
        if time.monotonic() - self._expired_at > 60:
            self._expired_at = time.monotonic()
            await self.broker.digests.expire()
        return len(claimed)

    async def run(self, stopping: asyncio.Event) -> None:
        """Release until `stopping` is set (a failed round is logged and retried: the
        digests it claimed come back when their lease lapses)."""
        while not stopping.is_set():
            try:
                busy = await self.run_once()
            except ConveyorError:
                log.exception("digests: a release round failed; its leases will lapse")
                busy = 0
            if busy < self.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.interval)
