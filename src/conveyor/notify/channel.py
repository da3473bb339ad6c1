"""The one small interface every channel implements: it renders, a provider transports.

A channel turns a queued `Item` into its wire payload (`render`, cheap and synchronous)
and hands a batch to its provider (`send_many`), getting one `Result` per item. It
declares how many items a provider call takes (`batch_size`), the largest payload
(`payload_limit`), its default rate limit (`rate_limit`, `"N/period"` across every worker,
or None) and whether a notification whose earlier attempt died between the provider call
and the ledger write can be resent carrying an idempotency or collapse handle the
receiver can use (`resend_unknown`; the delivery worker's `hold_unknown` records such
notifications `unknown` instead, for any channel).

A channel whose provider is one place (an SMTP server, FCM, APNs, an email API) tells its
`reach` when that place cannot be reached (`unreachable`) and when it answers again
(`reached`): the worker logs an outage as `conveyor.reach` does (one WARNING,
reminders at most every 30 s, one INFO line on recovery) instead of nothing. It only
decides what is logged: the items still come back transient and are retried, then
dead-lettered, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from conveyor.client import ServerUnavailable
from conveyor.notify.models import Item
from conveyor.notify.outcomes import Result
from conveyor.notify.templates import Rendered, Templates
from conveyor.reach import Reach

__all__ = ["Channel", "PayloadTooLarge"]


class PayloadTooLarge(ValueError):
    """A rendered payload over the channel's limit (a permanent failure)."""


class Channel:
    """Base class of channels; subclasses set the class attributes and the two methods."""

    kind: ClassVar[str] = "channel"
    batch_size: int = 100
    payload_limit: int = 1_048_576
    rate_limit: str | None = None
    resend_unknown: bool = True
    _reach: Reach | None = None  # (a subclass that skips __init__ still has one)

    def __init__(self) -> None:
        self.name = self.kind
        self.templates = Templates()
        self._reach = None

    def where(self) -> str:
        """How the log names the place this channel delivers to."""
        return f"the {self.name} provider"

    @property
    def reach(self) -> Reach:
        """Whether the provider answers (made on first use, when `where` is known)."""
        if self._reach is None:
            self._reach = Reach(self.where())
        return self._reach

    def unreachable(self, exc: BaseException, what: str, *args: object) -> None:
        """Log (once per outage) that the provider could not be reached: `exc` is the
        transport's error, `what % args` what was not done."""
        # Reach counts only "cannot answer now" errors as an outage; this one, worded
        # "unreachable", carries the transport's error as its cause (the line shows it).
        outage = ServerUnavailable("unreachable")
        outage.__cause__ = exc
        self.reach.error(outage, what, *args)

    def reached(self, asked_at: float) -> None:
        """The provider answered a call made at `asked_at` (`reach.now()`)."""
        if self._reach is not None:
            self._reach.ok(asked_at)

    def bind(self, name: str, templates: Templates) -> None:
        """Called by the notifier: the channel's name and the shared templates."""
        self.name = name
        self.templates = templates

    def render_template(self, item: Item, subject: str = "", text: str = "",
                        html: str | None = None) -> Rendered:
        """The item's template rendered, or the literal parts given."""
        if item.template:
            return self.templates.render(item.template, item.data,
                                         item.extra.get("locale"), self.name)
        return Rendered(subject, text, html)

    def render(self, item: Item) -> Any:
        """The payload for one item; raise `PayloadTooLarge` or `conveyor.errors.InvalidInput`
        for a notification that can never be sent."""
        raise NotImplementedError

    async def send_many(self, items: Sequence[Item], payloads: Sequence[Any]) -> list[Result]:
        """Transport a batch; one result per item, in order. Never raises for a provider's
        refusal (that is a result); may raise only for a bug."""
        raise NotImplementedError

    async def open(self) -> None:
        """Open connections (called once per worker process)."""

    async def close(self) -> None:
        """Close connections."""
