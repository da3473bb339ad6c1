"""`Notifier`: where notifications are sent from, and their status read.

```python
notifier = Notifier("sqlite:///app.db", channels={
    "email": SmtpChannel(host="localhost", port=2525, sender="Shop <news@shop.example>"),
    "push": WebPushChannel(vapid_private_key=pem, vapid_claims={"sub": "mailto:ops@shop"}),
}, templates="templates/")
async with notifier:
    ids = await notifier.asend_many([Email(to="a@example.com", template="welcome",
                                           data={"name": "Ann"})])
    await notifier.deliver()          # a delivery worker (or: conveyor notify worker)
```
Sending records each notification `queued` in the ledger and packs them, per channel,
in envelopes of `envelope_size` per queue message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import InvalidInput, Unsupported
from conveyor.ledger import Delivery, NewDelivery
from conveyor.locales import check_locale
from conveyor.models import Body, SendEntry
from conveyor.notify.channel import Channel
from conveyor.notify.delivery import Deliverer, queue_name
from conveyor.notify.delivery_options import DeliveryOptions
from conveyor.notify.models import Envelope, Item, Notification, to_item
from conveyor.notify.templates import Templates

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker
    from conveyor.worker.app import App

__all__ = ["DUPLICATE", "Notifier"]

MAX_ENVELOPES_PER_SEND = 100
LEDGER_BATCH = 1000  # the most rows one ledger write takes
DUPLICATE = ("the same notification was made before (the same idempotency key, or without "
             "one the same content to this address, within the keep time); nothing new was "
             "sent")
"""Why a notification is a `duplicate`: the reason `conveyor notify send` and
`POST /v1/recipients/{id}/notify` give."""


class Notifier:
    """Sends notifications through named channels (see the module docstring).

    `target`: a started or unstarted `Broker`, a `conveyor.App` (its database), or a
    database URL (None: the embedded SQLite file). Servers (`http://`) are not yet
    supported here: the ledger is reached in-process.
    """

    def __init__(self, target: Broker | App | str | None = None, *,
                 channels: Mapping[str, Channel],
                 templates: Templates | str | Path | Mapping[str, str] | None = None,
                 envelope_size: int = 200, track: bool = True,
                 keep_seconds: int = 7 * 86_400) -> None:
        from conveyor.broker.broker import Broker
        from conveyor.connect import is_server_url, open_broker

        if isinstance(target, Broker):
            self.broker, self._owned = target, False
        else:
            url = target if isinstance(target, str) or target is None else target.url
            if url is not None and is_server_url(url):
                raise Unsupported("Notifier needs the database, not a server URL, for now.")
            self.broker, self._owned = open_broker(url), True
        if isinstance(templates, Templates):
            self.templates = templates
        elif isinstance(templates, str | Path):
            self.templates = Templates(folder=templates)
        else:
            self.templates = Templates(mapping=templates)
        self.channels = dict(channels)
        for name, channel in self.channels.items():
            channel.bind(name, self.templates)
        self.envelope_size = envelope_size
        self.track = track
        self.keep_seconds = keep_seconds
        self._ensured: set[str] = set()
        self.waits: dict[str, float] = {}
        """Seconds `enqueue_items` spent packing envelopes (`pack`) and writing them with
        their ledger rows (`write`; `send` when tracking is off)."""

    async def start(self) -> None:
        """Start the broker when this notifier owns it."""
        if self._owned:
            await self.broker.start()

    async def close(self) -> None:
        """Close the broker when this notifier owns it."""
        if self._owned:
            await self.broker.close()

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # sending ------------------------------------------------------------------------
    async def _ensure(self, channel: str) -> None:
        if channel not in self._ensured:
            await self.deliverer().ensure_queues()
            self._ensured.update(self.channels)

    def items(self, notifications: Sequence[Notification], enqueued_at: int | None = None
              ) -> dict[str, list[Item]]:
        """The queued form of notifications, by channel (checks channels and templates)."""
        at = int(time.time() * 1000) if enqueued_at is None else enqueued_at
        by_channel: dict[str, list[Item]] = {}
        known: set[str] = set()  # templates found: a bulk send names a few, a million times
        for index, n in enumerate(notifications):
            if n.channel not in self.channels:
                raise InvalidInput(f"No channel named {n.channel!r}.", field="channel",
                                   index=index)
            template = getattr(n, "template", None)
            if template is not None and template not in known:
                if not self.templates.has(template):
                    raise InvalidInput(f"No template named {template!r}.",
                                       field="template", index=index)
                known.add(template)
            locale = getattr(n, "locale", None)
            if locale is not None:
                try:
                    check_locale(locale)
                except InvalidInput as exc:
                    raise InvalidInput(exc.message, field="locale", index=index) from None
            by_channel.setdefault(n.channel, []).append(to_item(n, at))
        return by_channel

    async def asend_many(self, notifications: Sequence[Notification], *,
                         fresh: set[str] | None = None) -> list[str]:
        """Enqueue notifications; returns their delivery ids (in order per channel). The
        ids enqueued now are added to `fresh`: an id left out was made before (the same
        idempotency key or content, `DUPLICATE`), and nothing new was sent for it."""
        ids: list[str] = []
        # Stored templates (`PUT /v1/templates/{name}`) are read before `items` checks names.
        await self.templates.prepare(self.broker, {
            t for n in notifications if (t := getattr(n, "template", None)) is not None})
        for channel, items in self.items(notifications).items():
            await self.enqueue_items(channel, items, fresh=fresh)
            ids += [i.id for i in items]
        return ids

    async def asend(self, notification: Notification) -> str:
        """Enqueue one notification; returns its delivery id."""
        return (await self.asend_many([notification]))[0]

    async def enqueue_items(self, channel: str, items: Sequence[Item], *,
                            status: str = "queued", delay_seconds: int | None = None,
                            message_ids: list[str] | None = None,
                            fresh: set[str] | None = None) -> int:
        """Record items `status` (`queued`; `held` for quiet hours) and enqueue those not
        recorded before (an idempotency key seen again sends nothing), in envelopes that
        become visible after `delay_seconds`; returns how many were enqueued. The
        envelopes' queue message ids are appended to `message_ids` when given, and the
        delivery ids enqueued now (not recorded before) added to `fresh`.

        With tracking, each chunk of up to 1,000 items is recorded and enqueued in one
        transaction (`broker.ledger.record_send`), so that a failure leaves neither."""
        await self._ensure(channel)
        if not self.track:
            if fresh is not None:
                fresh.update(i.id for i in items)
            return await self._send(channel, items, delay_seconds, message_ids)
        unique = list({i.id: i for i in items}.values())
        size = self.envelope_size
        per = max(1, LEDGER_BATCH // size) * size if size < LEDGER_BATCH else LEDGER_BATCH
        queue = queue_name(channel)
        enqueued = 0
        for start in range(0, len(unique), per):
            chunk = unique[start:start + per]
            while chunk:
                since = time.perf_counter()
                entries = self._entries(channel, chunk, delay_seconds)
                now = time.perf_counter()
                self.waits["pack"] = self.waits.get("pack", 0.0) + now - since
                new, sent = await self.broker.ledger.record_send(
                    [NewDelivery(i.id, channel, i.to) for i in chunk], queue, entries,
                    status=status, keep_seconds=self.keep_seconds)
                self.waits["write"] = self.waits.get("write", 0.0) + time.perf_counter() - now
                if sent:
                    enqueued += len(chunk)
                    if fresh is not None:
                        fresh.update(i.id for i in chunk)
                    if message_ids is not None:
                        message_ids += [r.id for r in sent]
                    break
                # Some were recorded before: nothing was written; again with the new ones
                # (fewer each time, so this ends).
                chunk = [i for i, n in zip(chunk, new) if n]
        return enqueued

    def _entries(self, channel: str, items: Sequence[Item], delay_seconds: int | None
                 ) -> list[SendEntry]:
        size = self.envelope_size
        return [SendEntry(Body(Envelope(channel, 0, list(items[i:i + size])).dumps()),
                          delay_seconds)
                for i in range(0, len(items), size)]

    async def _send(self, channel: str, items: Sequence[Item], delay_seconds: int | None,
                    message_ids: list[str] | None) -> int:
        """Enqueue without recording (tracking off)."""
        since = time.perf_counter()
        entries = self._entries(channel, items, delay_seconds)
        for start in range(0, len(entries), MAX_ENVELOPES_PER_SEND):
            sent = await self.broker.send(queue_name(channel),
                                          entries[start:start + MAX_ENVELOPES_PER_SEND])
            if message_ids is not None:
                message_ids += [r.id for r in sent]
        self.waits["send"] = self.waits.get("send", 0.0) + time.perf_counter() - since
        return len(items)

    def send_many(self, notifications: Sequence[Notification]) -> list[str]:
        """`asend_many` from synchronous code (opens and closes the broker if owned)."""
        async def run() -> list[str]:
            async with self:
                return await self.asend_many(notifications)
        return asyncio.run(run())

    # status -------------------------------------------------------------------------
    async def status(self, delivery_id: str) -> Delivery | None:
        """A notification's ledger row."""
        return await self.broker.ledger.get(delivery_id)

    async def counts(self, channel: str | None = None) -> dict[str, dict[str, int]]:
        """Notifications by channel and status."""
        return await self.broker.ledger.counts(channel)

    # delivering ---------------------------------------------------------------------
    def deliverer(self, options: DeliveryOptions | None = None) -> Deliverer:
        """A delivery worker for this notifier's channels."""
        return Deliverer(self.broker, self.channels, options)

    async def deliver(self, options: DeliveryOptions | None = None) -> None:
        """Run a delivery worker in this process until cancelled."""
        await self.deliverer(options).run()

    def __repr__(self) -> str:
        return f"<Notifier channels={sorted(self.channels)}>"


