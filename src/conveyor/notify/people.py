"""Notify a person: one notification for a recipient and a category, fanned out to the
recipient's addresses on every channel their preferences allow.

```python
await notify_recipient(notifier, PersonNotification(
    "ann", Category("security", critical=True), "password-reset", {"link": url}))
```
Per address, in order: a channel the notifier does not run, a channel the recipient's
preferences close for the category, or a suppressed address is recorded `skipped` with
the reason; the rest are enqueued, `held` until the recipient's quiet hours end when the
recipient's wall clock is inside them (a delay on the queue message, so the hold survives
restarts and nothing is dropped). Critical categories skip neither preferences nor quiet
hours. A recipient with no address left for any allowed channel gets one `skipped` row
(channel `none`) saying so; so does one whose stored template has no locale for the
recipient in its fallback chain (`conveyor.locales`).

Everything is checked before anything is written; then the queued and held ones are
written before the skips, each through the notifier's usual path (ledger, then queue).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from conveyor.digests import DigestSpec, parse_digest
from conveyor.errors import (
    InvalidInput,
    RecipientNotFound,
    TemplateLocaleMissing,
    TemplateNotFound,
)
from conveyor.ledger import DeliveryUpdate, NewDelivery
from conveyor.locales import stored_name
from conveyor.notify.delivery import queue_name
from conveyor.notify.models import Apns, Email, Fcm, Item, WebPush, delivery_id, to_item
from conveyor.notify.notifier import DUPLICATE
from conveyor.recipients import (
    ADDRESS_CHANNELS,
    Category,
    Recipient,
    address_key,
    allowed,
    quiet_release_at,
)

if TYPE_CHECKING:
    from conveyor.notify.locales import Compiled
    from conveyor.notify.notifier import Notifier

__all__ = ["NO_ADDRESS", "STATUSES", "PersonNotification", "Planned", "check_data", "decide",
           "fan_out", "notify_recipient", "plan", "skip_all", "suppressed_among", "tally",
           "write_planned"]

NO_ADDRESS = "none"
"""The channel of the skip row of a recipient with no address for any allowed channel."""
MAX_DATA = 64 * 1024


@dataclass(frozen=True, slots=True)
class PersonNotification:
    """A notification for one recipient: its category, template and data; `channels`
    narrows the fan-out (None: every channel); the same `idempotency_key` again sends
    nothing (without one, the same category, template and data again send nothing)."""

    recipient: str
    category: Category
    template: str
    data: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    channels: Sequence[str] | None = None
    digest: DigestSpec | Mapping[str, Any] | None = None
    """`{"key": ..., "window": "10m"}`: merge into the recipient's digest for the key
    (`conveyor.notify.digests`); ignored by critical categories."""


@dataclass(frozen=True, slots=True)
class Planned:
    """What became of one address: `queued`, `held` (until `release_at`, ms),
    `digested` (into a digest released at `release_at`), `skipped` (with the `reason`) or
    `duplicate` (the same notification was made before: nothing new was sent)."""

    channel: str
    address: str
    delivery_id: str
    status: str
    reason: str | None = None
    release_at: int | None = None
    item: Item | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {"channel": self.channel, "address": self.address,
                "delivery_id": self.delivery_id, "status": self.status,
                "reason": self.reason, "release_at": self.release_at}


def check_data(data: Any) -> None:
    """Raise `InvalidInput` unless `data` is a JSON object of at most `MAX_DATA` bytes."""
    if not isinstance(data, Mapping):
        raise InvalidInput("data must be a JSON object.", field="data")
    try:
        encoded = orjson.dumps(data)
    except TypeError as exc:  # orjson's error for ints past 64 bits, non-str keys, ...
        raise InvalidInput(f"data must hold JSON values only: {exc}.", field="data") from exc
    if len(encoded) > MAX_DATA:
        raise InvalidInput(f"data must be at most {MAX_DATA} bytes of JSON.", field="data")


def check(n: PersonNotification) -> None:
    """Raise `InvalidInput` for a malformed request (before anything is read or written)."""
    c = n.category
    if not isinstance(c.name, str) or not 1 <= len(c.name) <= 100:
        raise InvalidInput("category must be a name of 1 to 100 characters.",
                           field="category")
    if not isinstance(n.template, str) or not 1 <= len(n.template) <= 200:
        raise InvalidInput("template must be a template name.", field="template")
    check_data(n.data)
    if n.idempotency_key is not None and (not isinstance(n.idempotency_key, str) or
                                          not 1 <= len(n.idempotency_key) <= 200):
        raise InvalidInput("idempotency_key must be 1 to 200 characters.",
                           field="idempotency_key")
    parse_digest(n.digest)
    for ch in n.channels or ():
        if ch not in ADDRESS_CHANNELS:
            raise InvalidInput(f"No address channel {ch!r}; the channels are "
                               f"{', '.join(ADDRESS_CHANNELS)}.", field="channels")


def _item(n: PersonNotification, recipient: Recipient, channel: str, address: Any,
          now_ms: int) -> Item:
    """The queued form for one address, its id unique per recipient and address."""
    key = address_key(channel, address)
    if channel == "email":
        item = to_item(Email(to=address, template=n.template, data=n.data), now_ms)
    elif channel == "push":
        item = to_item(WebPush(subscription=address, template=n.template, data=n.data),
                       now_ms)
    elif channel == "fcm":
        item = to_item(Fcm(token=address, template=n.template, data=n.data), now_ms)
    else:
        item = to_item(Apns(token=address, template=n.template, data=n.data), now_ms)
    if n.idempotency_key is not None:
        source = f"{n.idempotency_key}\x1f{recipient.id}\x1f{key}"
        did = delivery_id(channel, key, source, {})
    else:
        did = delivery_id(channel, key, None, _content(n, recipient.id))
    # The recipient's locale travels with the item: the worker renders in its fallback chain.
    return item._replace(id=did, extra={**item.extra, "locale": recipient.locale})


def _content(n: PersonNotification, recipient: str | None = None) -> dict[str, Any]:
    """What a notification's id is derived from without an idempotency key: the same
    notification again is that one; a critical one is another (it must not fold into an
    identical one held for quiet hours, nor into one skipped by preferences)."""
    content: dict[str, Any] = {"c": n.category.name, "t": n.template, "d": n.data}
    if recipient is not None:
        content["r"] = recipient
    if n.category.critical:
        content["k"] = 1
    return content


Fanned = list[tuple[str, Item, str | None]]
"""Each address of a recipient: (channel, its queued form, the reason it is skipped
whatever the suppression list says, or None)."""


def fan_out(channels_run: Collection[str], recipient: Recipient, n: PersonNotification,
            now_ms: int) -> Fanned:
    """One item per address of the channels asked for, each with the reason preferences
    or the notifier's channels rule it out (pure: reads and writes nothing)."""
    out: Fanned = []
    for channel in ADDRESS_CHANNELS:
        addresses = recipient.addresses.get(channel, ())
        if not addresses or (n.channels is not None and channel not in n.channels):
            continue
        reason = None
        if channel not in channels_run:
            reason = f"this notifier runs no {channel} channel"
        elif not allowed(recipient, n.category, channel):
            reason = (f"not opted in to {n.category.name} on {channel}" if
                      n.category.opt_in else f"opted out of {n.category.name} on {channel}")
        out += [(channel, _item(n, recipient, channel, a, now_ms), reason)
                for a in addresses]
    return out


def decide(recipient: Recipient, n: PersonNotification, fanned: Fanned,
           suppressed: Container[tuple[str, str]], now_ms: int) -> list[Planned]:
    """Queue, hold or skip each fanned-out address, given which (channel, address) pairs
    are suppressed (pure)."""
    release = None
    if recipient.quiet_hours is not None and not n.category.critical:
        release = quiet_release_at(recipient.quiet_hours, recipient.zone, now_ms)
    out: list[Planned] = []
    for channel, item, reason in fanned:
        why = reason or ("suppressed" if (channel, item.to) in suppressed else None)
        if why:
            out.append(Planned(channel, item.to, item.id, "skipped", why, None, item))
        elif release is not None:
            out.append(Planned(channel, item.to, item.id, "held", None, release, item))
        else:
            out.append(Planned(channel, item.to, item.id, "queued", None, None, item))
    if not any(p.status != "skipped" for p in out):
        why = ("no address for any allowed channel" if out else
               "no address on any channel" + (" asked for" if n.channels else ""))
        out.append(skip_all(n, recipient, why))
    return out


async def suppressed_among(notifier: Notifier, fanned: Iterable[tuple[str, Item, str | None]]
                           ) -> set[tuple[str, str]]:
    """The (channel, address) pairs on the suppression list among the addresses not
    already ruled out, looked up per channel in batches of 1,000."""
    by_channel: dict[str, list[str]] = {}
    for channel, item, reason in fanned:
        if reason is None:
            by_channel.setdefault(channel, []).append(item.to)
    found: set[tuple[str, str]] = set()
    for channel, addresses in by_channel.items():
        unique = list(dict.fromkeys(addresses))
        for start in range(0, len(unique), 1000):
            hits = await notifier.broker.ledger.suppressed(channel,
                                                           unique[start:start + 1000])
            found.update((channel, a) for a in hits)
    return found


async def plan(notifier: Notifier, recipient: Recipient, n: PersonNotification,
               now_ms: int) -> list[Planned]:
    """Decide, per address, queue, hold or skip (reads the suppression list; writes
    nothing)."""
    fanned = fan_out(notifier.channels, recipient, n, now_ms)
    return decide(recipient, n, fanned, await suppressed_among(notifier, fanned), now_ms)


STATUSES = ("queued", "held", "skipped", "digested", "duplicate")
"""What became of an address (`Planned.status`), as `tally` counts them."""


def tally(planned: Sequence[Planned]) -> dict[str, int]:
    """How many of `planned` went each way (`STATUSES`): the `none` row saying nothing is
    left counts only when it stands alone (no address, no locale), as the addresses it
    sums up were counted each with its own skip. One suppressed address was two skips."""
    rows = [p for p in planned if p.channel != NO_ADDRESS] or planned
    return {s: sum(p.status == s for p in rows) for s in STATUSES}


def skip_all(n: PersonNotification, recipient: Recipient, why: str) -> Planned:
    """The one `skipped` row (channel `none`) of a notification nothing can go out for."""
    key = None if n.idempotency_key is None else f"{n.idempotency_key}\x1f{recipient.id}"
    did = delivery_id(NO_ADDRESS, recipient.id, key, _content(n))
    return Planned(NO_ADDRESS, recipient.id, did, "skipped", why)


async def notify_recipient(notifier: Notifier, n: PersonNotification,
                           now_ms: int | None = None, *,
                           check_template: bool = True) -> list[Planned]:
    """Fan one notification out to a recipient (see the module docstring); returns what
    became of each address. Raises `RecipientNotFound`, `TemplateNotFound` or
    `InvalidInput`.

    `check_template=False` when the delivery workers hold templates this process does not
    (then only the workers can tell a file template's name from a mistake).
    A template neither stored nor among the notifier's is `TemplateNotFound`, and nothing
    is written."""
    check(n)
    stored = await _stored(notifier, n.template)
    if stored is None and check_template and not notifier.templates.has(n.template):
        if stored_name(n.template):  # stored since the cache read it? (another process)
            stored = await notifier.templates.stored.fetch(notifier.broker, n.template,
                                                           fresh=True)
        if stored is None:
            raise TemplateNotFound(f"No template {n.template!r}: none is stored under that "
                                   "name and no file template here has it.")
    recipient = await notifier.broker.recipients.get(n.recipient)
    if recipient is None:
        raise RecipientNotFound(f"No recipient {n.recipient!r}.")
    at = int(time.time() * 1000) if now_ms is None else now_ms
    if stored is not None and stored.template.resolve(recipient.locale) is None:
        # A per-person condition, like an opt-out: recorded with its reason, not an error
        # of the request (the template is fine for other people).
        try:
            stored.pick(recipient.locale, None)
        except TemplateLocaleMissing as exc:
            planned = [skip_all(n, recipient, exc.message)]
    else:
        planned = await plan(notifier, recipient, n, at)
    if n.digest is not None and not n.category.critical:
        from conveyor.notify.digests import gather  # digests builds on this module

        planned = await gather(notifier, recipient, n, planned, at)
    if notifier.track:
        # Linked first: a link to a delivery never written lists nothing, whereas a
        # delivery without its link would be missing from the recipient's list.
        await notifier.broker.recipients.link(recipient.id, [p.delivery_id for p in planned],
                                              keep_seconds=notifier.keep_seconds)
    fresh: set[str] = set()  # the delivery ids not recorded before
    for channel in dict.fromkeys(p.channel for p in planned if p.status != "skipped"):
        for status in ("queued", "held"):
            mine = [p for p in planned if p.channel == channel and p.status == status]
            if not mine:
                continue
            delay = None
            if status == "held":
                # Rounded up: released at the end of the window, never a second early.
                delay = max(1, math.ceil((max(p.release_at or at for p in mine) - at) / 1000))
            held: list[str] | None = [] if status == "held" else None
            await notifier.enqueue_items(channel, [p.item for p in mine if p.item],
                                         status=status, delay_seconds=delay,
                                         message_ids=held, fresh=fresh)
            if held:  # remembered, so that a change of quiet hours re-times them
                await notifier.broker.digests.hold(recipient.id, queue_name(channel), held,
                                                   max(p.release_at or at for p in mine))
    await _record_skips(notifier, [p for p in planned if p.status == "skipped"])
    # Said as it is: an answer of `queued` for what was recorded before (and so not sent
    # again) would claim a delivery that is not coming.
    return [replace(p, status="duplicate", reason=DUPLICATE, release_at=None)
            if p.status in ("queued", "held") and p.item and p.delivery_id not in fresh
            else p for p in planned]


async def _stored(notifier: Notifier, name: str) -> Compiled | None:
    """The stored template `name` through the notifier's cache (one read per name every
    few seconds, not per notification); None for a name no stored template can have."""
    return await notifier.templates.stored.fetch(notifier.broker, name) \
        if stored_name(name) else None


async def write_planned(notifier: Notifier, people: Sequence[tuple[str, list[Planned]]],
                        now_ms: int, *, lap: Callable[[str], None] | None = None) -> None:
    """Write what was planned for many recipients at once (`conveyor.notify.segment`):
    their links first (a link to a delivery never written lists nothing, whereas a
    delivery without its link would be missing from the recipient's list), then per
    channel the queued ones and the held ones (a delayed envelope per release time,
    shared by the people released then: so, unlike `notify_recipient`'s, these holds are
    not re-timed when one person's quiet hours change later), then the skips with their
    reasons.
    `lap(stage)` is called after each stage (`links`, `enqueue`, `skips`), for timing."""
    lap = lap or _no_lap
    if notifier.track:
        pairs = [(rid, p.delivery_id) for rid, planned in people for p in planned]
        for start in range(0, len(pairs), 1000):
            await notifier.broker.recipients.link_many(pairs[start:start + 1000],
                                                       keep_seconds=notifier.keep_seconds)
    lap("links")
    flat = [p for _, planned in people for p in planned]
    for channel in dict.fromkeys(p.channel for p in flat if p.status != "skipped"):
        queued = [p.item for p in flat if p.channel == channel and p.status == "queued"
                  and p.item]
        if queued:
            await notifier.enqueue_items(channel, queued)
        held: dict[int, list[Item]] = {}
        # The delay counts from the broker's clock now, not from `now_ms` (when quiet
        # hours were judged): a bulk notify takes a while to write.
        at = notifier.broker.wall_now()
        for p in flat:
            if p.channel == channel and p.status == "held" and p.item:
                # Rounded up: released at the end of the window, never a second early.
                delay = max(1, math.ceil(((p.release_at or at) - at) / 1000))
                held.setdefault(delay, []).append(p.item)
        for delay, items in sorted(held.items()):
            await notifier.enqueue_items(channel, items, status="held", delay_seconds=delay)
    lap("enqueue")
    skips = [p for p in flat if p.status == "skipped"]
    for start in range(0, len(skips), 1000):
        await _record_skips(notifier, skips[start:start + 1000])
    lap("skips")


def _no_lap(stage: str) -> None:
    """No timing."""


async def _record_skips(notifier: Notifier, skips: Sequence[Planned]) -> None:
    """Record skips with their reasons; a row already known (a repeated request) keeps
    its status."""
    if not skips or not notifier.track:
        return
    ledger = notifier.broker.ledger
    new = await ledger.record([NewDelivery(p.delivery_id, p.channel, p.address)
                               for p in skips], status="skipped",
                              keep_seconds=notifier.keep_seconds)
    await ledger.finish([DeliveryUpdate(p.delivery_id, "skipped", p.reason)
                         for p, fresh in zip(skips, new) if fresh])
