"""An inbound SMTP address for bounces: delivery status notifications (RFC 3464) and
complaint reports (RFC 5965) mailed to it are read and applied to the suppression list.

Point the `Return-Path` (envelope sender) of outgoing mail, or a provider's bounce
forwarding, at it. Each accepted message is parsed (`conveyor.notify.feedback.dsn`) and
applied before the `250`; a message that is no report is accepted and ignored (so a
bounce of a bounce does not loop); an applying failure answers `451` so the sender retries.

Such an address takes mail from anyone, so a report is believed only about mail we sent:
the returned message's Message-ID (`<delivery id@domain>`, as the SMTP channel writes it)
must name a delivery in the ledger, and only that delivery's recipient is applied
(`known_only=False` believes every report, for mail sent by other software).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.notify.feedback import (
    Feedback,
    FeedbackSettings,
    apply_feedback,
    dsn,
    original_message_id,
)

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["BounceHandler", "serve_bounces"]

log = logging.getLogger("conveyor.notify")


class BounceHandler:
    """An aiosmtpd handler that applies the reports it receives."""

    def __init__(self, broker: Broker, settings: FeedbackSettings | None = None,
                 max_bytes: int = 10 * 1_048_576, known_only: bool = True) -> None:
        self.broker = broker
        self.known_only = known_only
        self.settings = settings or FeedbackSettings()
        self.max_bytes = max_bytes
        self.reports = 0
        self.ignored = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Parse and apply one message."""
        raw: bytes = envelope.original_content or envelope.content
        if len(raw) > self.max_bytes:
            return "552 5.3.4 Message too big"
        try:
            events = dsn(raw)
            if events and self.known_only:
                events = await self._ours(raw, events)
        except Exception:  # a malformed message is the sender's problem, not a retry
            events = []
        if not events:
            self.ignored += 1
            return "250 2.0.0 Ok: not a report, ignored"
        s = self.settings
        try:
            await apply_feedback(self.broker, events, channel=s.channel,
                                 soft_limit=s.soft_limit, soft_window=s.soft_window)
        except ConveyorError:
            log.exception("bounces: could not apply a report")
            return "451 4.3.0 Try again later"
        self.reports += 1
        return f"250 2.0.0 Ok: {len(events)} recipients applied"

    async def _ours(self, raw: bytes, events: list[Feedback]) -> list[Feedback]:
        """The events about the delivery the returned message's Message-ID names."""
        message_id = original_message_id(raw)
        if not message_id:
            return []
        row = await self.broker.ledger.get(message_id.partition("@")[0][:200])
        if row is None or row.channel != self.settings.channel:
            return []
        return [e for e in events if e.address.lower() == row.recipient.lower()]


async def serve_bounces(handler: BounceHandler, host: str, port: int) -> asyncio.Server:
    """Listen for reports on `host:port` in the running loop (the broker's)."""
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, hostname="conveyor-bounces", data_size_limit=handler.max_bytes),
        host, port)
