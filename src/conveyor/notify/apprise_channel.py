"""Apprise as the long-tail channel: any of its 100+ services by URL (`tgram://`,
`slack://`, `json://`, `mailto://`, ...). One notification per Apprise call; Apprise
answers only success or failure, so a failure is treated as transient (retried, then
dead-lettered after the last attempt) and a crash mid-call is resent."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from conveyor.notify.channel import Channel
from conveyor.notify.models import Item
from conveyor.notify.outcomes import Result

__all__ = ["AppriseChannel"]


class AppriseChannel(Channel):
    """Notifications to Apprise URLs."""

    kind: ClassVar[str] = "apprise"
    batch_size = 20
    payload_limit = 65_536
    resend_unknown = True

    def __init__(self, *, concurrency: int = 8, rate_limit: str | None = None) -> None:
        super().__init__()
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self._limit = asyncio.Semaphore(concurrency)

    def render(self, item: Item) -> tuple[str, str, str]:
        """(url, title, body)."""
        x = item.extra
        parts = self.render_template(item, x.get("title", ""), x.get("body", ""))
        return item.to, parts.subject, parts.text

    async def _one(self, payload: tuple[str, str, str]) -> Result:
        url, title, body = payload
        with _quiet():  # Apprise loads its plugins lazily; one imports `imghdr`
            import apprise

            notifier = apprise.Apprise()
            added = notifier.add(url)
        if not added:
            return Result.permanent(f"Apprise does not understand the URL {url[:100]!r}")
        async with self._limit:
            ok = await notifier.async_notify(body=body or " ", title=title)
        return Result.sent() if ok else Result.transient("Apprise reported a failure")

    async def send_many(self, items: Sequence[Item], payloads: Sequence[Any]) -> list[Result]:
        """One Apprise call each, a few at a time."""
        return list(await asyncio.gather(*(self._one(p) for p in payloads)))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without the `'imghdr' is deprecated` warning of an Apprise plugin's dependency
    (Python 3.11 and 3.12): Apprise's business, not our users'. Synchronous code only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
        yield
