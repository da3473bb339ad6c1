"""An inbound SMTP address for bounces: delivery status notifications (RFC 3464) and
complaint reports (RFC 5965) mailed to it are read and applied to the suppression list.

Point the `Return-Path` (envelope sender) of outgoing mail, or a provider's bounce
forwarding, at it. Each accepted message is parsed (`conveyor.notify.feedback.dsn`) and
applied before the `250`; a message that is no report is accepted and ignored (so a
bounce of a bounce does not loop); an applying failure answers `451` so the sender retries.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.notify.feedback import FeedbackSettings, apply_feedback, dsn

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["BounceHandler", "serve_bounces"]

log = logging.getLogger("conveyor.notify")


class BounceHandler:
    """An aiosmtpd handler that applies the reports it receives."""

    def __init__(self, broker: Broker, settings: FeedbackSettings | None = None,
                 max_bytes: int = 10 * 1_048_576) -> None:
        self.broker = broker
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


async def serve_bounces(handler: BounceHandler, host: str, port: int) -> asyncio.Server:
    """Listen for reports on `host:port` in the running loop (the broker's)."""
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, hostname="conveyor-bounces", data_size_limit=handler.max_bytes),
        host, port)
