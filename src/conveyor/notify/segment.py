"""Notify many people in one call: a category, a template and data for a page of
recipients, or for every recipient stored (a segment), with each one's preferences,
suppressions and quiet hours applied in bulk.

```python
counts = await notify_segment(notifier, Category("news"), "weekly", {"issue": 42})
print(counts.queued, counts.held, counts.skipped)
```
Per person the decisions are exactly `notify_recipient`'s (`people.fan_out` and
`people.decide`); what changes is the cost: a page of people costs one suppression
look-up per channel and 1,000 addresses, one link write, and one ledger write and one
enqueue per channel and 1,000 notifications, instead of a few round trips per person.
The same call again sends nothing new (delivery ids are derived from the recipient, the
category, the template and the data, or from `idempotency_key`).

Not here yet (they are `notify_recipient`'s): digests, stored templates per locale, and
re-timing a hold when a person's quiet hours change later (a bulk hold is one envelope
shared by everyone released at that instant).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput
from conveyor.locales import stored_name
from conveyor.notify.people import (
    PersonNotification,
    Planned,
    check,
    decide,
    fan_out,
    suppressed_among,
    write_planned,
)
from conveyor.recipients import Category, Recipient

if TYPE_CHECKING:
    from conveyor.notify.notifier import Notifier

__all__ = ["SegmentCounts", "notify_people", "notify_segment"]

PAGE = 2000
"""Recipients read and notified per step of `notify_segment`."""


@dataclass(slots=True)
class SegmentCounts:
    """What a bulk notify did: people reached, and notifications `queued`, `held` (until
    the recipient's quiet hours end) and `skipped` (by reason: `preference`,
    `suppressed`, `no channel` when the notifier runs none of the person's channels,
    `no address` for the one row of a person left with none). `cpu`: this process's
    CPU seconds by stage (`fan_out`: items and preferences; `suppression`; `decide`:
    quiet hours; `links`; `enqueue`: ledger and queue, as a plain send; `skips`)."""

    people: int = 0
    queued: int = 0
    held: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def notifications(self) -> int:
        """Every notification recorded: queued, held and skipped."""
        return self.queued + self.held + sum(self.skipped.values())

    def add(self, planned: Sequence[Planned]) -> None:
        """Count one person's plan."""
        self.people += 1
        for p in planned:
            if p.status == "queued":
                self.queued += 1
            elif p.status == "held":
                self.held += 1
            else:
                kind = _skip_kind(p.reason or "")
                self.skipped[kind] = self.skipped.get(kind, 0) + 1


def _skip_kind(reason: str) -> str:
    if reason == "suppressed":
        return "suppressed"
    if reason.startswith(("opted out", "not opted in")):
        return "preference"
    if reason.startswith("this notifier runs no"):
        return "no channel"
    return "no address"


async def notify_people(notifier: Notifier,
                        people: Sequence[tuple[Recipient, PersonNotification]],
                        now_ms: int | None = None, *, check_template: bool = True,
                        counts: SegmentCounts | None = None) -> SegmentCounts:
    """Notify each recipient given with its own `PersonNotification` (whose `recipient`
    must be that recipient's id), in bulk; returns the counts (added to `counts` when
    given). Everything is checked before anything is written."""
    out = counts if counts is not None else SegmentCounts()
    known: set[str] = set()
    for index, (recipient, n) in enumerate(people):
        if n.recipient != recipient.id:
            raise InvalidInput(f"Notification {index} names {n.recipient!r}, not the "
                               f"recipient given ({recipient.id!r}).", field="recipient",
                               index=index)
        check(n)
        if n.digest is not None:
            raise InvalidInput("A bulk notify takes no digest (notify_recipient does).",
                               field="digest", index=index)
        if n.template not in known:
            if stored_name(n.template) and await notifier.templates.stored.fetch(
                    notifier.broker, n.template) is not None:
                raise InvalidInput("A bulk notify renders file or mapping templates, not "
                                   "stored ones (notify_recipient does).", field="template",
                                   index=index)
            if check_template and not notifier.templates.has(n.template):
                raise InvalidInput(f"No template named {n.template!r}.", field="template",
                                   index=index)
            known.add(n.template)
    at = notifier.broker.wall_now() if now_ms is None else now_ms
    clock = _Stages(out.cpu)
    fanned = [fan_out(notifier.channels, r, n, at) for r, n in people]
    clock.lap("fan_out")
    suppressed = await suppressed_among(notifier, (f for one in fanned for f in one))
    clock.lap("suppression")
    plans = [(r.id, decide(r, n, f, suppressed, at))
             for (r, n), f in zip(people, fanned)]
    for _, planned in plans:
        out.add(planned)
    clock.lap("decide")
    await write_planned(notifier, plans, at, lap=clock.lap)
    return out


class _Stages:
    """CPU seconds of this process (every thread: the SQLite storage works in its own)
    added to `into` by stage."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.since = time.process_time()

    def lap(self, stage: str) -> None:
        now = time.process_time()
        self.into[stage] = self.into.get(stage, 0.0) + now - self.since
        self.since = now


async def notify_segment(notifier: Notifier, category: Category, template: str,
                         data: Mapping[str, Any] | None = None, *,
                         personal: Callable[[Recipient], Mapping[str, Any]] | None = None,
                         where: Callable[[Recipient], bool] | None = None,
                         channels: Sequence[str] | None = None,
                         idempotency_key: str | None = None, page: int = PAGE,
                         now_ms: int | None = None,
                         progress: Callable[[SegmentCounts], None] | None = None
                         ) -> SegmentCounts:
    """Notify every stored recipient (or those `where` accepts) of `category` with
    `template`, page by page in id order. `personal(recipient)` adds per-person data
    over `data`. `now_ms`: the instant quiet hours are judged at (default: now, read
    when the call starts: one request, one instant; held ones are released when their
    window ends however long the call took). `progress(counts)` after each
    page."""
    counts = SegmentCounts()
    at = notifier.broker.wall_now() if now_ms is None else now_ms
    after: str | None = None
    base = dict(data or {})
    while True:
        recipients = await notifier.broker.recipients.page(after, page)
        if not recipients:
            break
        after = recipients[-1].id
        people = [(r, PersonNotification(
            r.id, category, template, {**base, **personal(r)} if personal else base,
            idempotency_key, channels)) for r in recipients if where is None or where(r)]
        if people:
            await notify_people(notifier, people, at, counts=counts)
        if progress is not None:
            progress(counts)
    return counts
