"""Channels and notifications from plain settings (what `conveyor notify worker` and
`conveyor notify send` are given), and a delivery worker that runs until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.notify.channel import Channel
from conveyor.notify.delivery import DeliveryOptions
from conveyor.notify.models import Email, Notification, Webhook, WebPush
from conveyor.notify.notifier import Notifier

__all__ = ["ChannelSettings", "notification", "run_worker"]


@dataclass(frozen=True)
class ChannelSettings:
    """Which channels a worker runs and how they reach their providers.

    `smtp`: `host:port` (the email channel); `vapid_key`: a PEM file (the push channel, with
    `vapid_sub` as the `sub` claim); `webhook_secret`: the webhook channel's HMAC secret.
    """

    smtp: str | None = None
    sender: str = "conveyor@localhost"
    starttls: bool = False
    tls: bool = False
    username: str | None = None
    password: str | None = None
    pool_size: int = 10
    email_rate: str | None = None
    vapid_key: str | None = None
    vapid_sub: str = "mailto:ops@localhost"
    push_rate: str | None = None
    webhook_secret: str | None = None

    def channels(self) -> dict[str, Channel]:
        """The configured channels by name (`email`, `push`, `webhook`)."""
        from conveyor.notify.smtp import SmtpChannel
        from conveyor.notify.webhook import WebhookChannel
        from conveyor.notify.webpush import WebPushChannel

        made: dict[str, Channel] = {}
        if self.smtp:
            host, _, port = self.smtp.rpartition(":")
            if not host or not port.isdigit():
                raise InvalidInput("--smtp must be host:port.", field="smtp")
            made["email"] = SmtpChannel(
                host, int(port), sender=self.sender, starttls=self.starttls, tls=self.tls,
                username=self.username, password=self.password, pool_size=self.pool_size,
                rate_limit=self.email_rate)
        if self.vapid_key:
            made["push"] = WebPushChannel(Path(self.vapid_key).read_bytes(),
                                          {"sub": self.vapid_sub}, rate_limit=self.push_rate)
        if self.webhook_secret:
            made["webhook"] = WebhookChannel(self.webhook_secret)
        if not made:
            raise InvalidInput("Configure at least one channel (--smtp, --vapid-key or "
                               "--webhook-secret-env).")
        return made


def notification(channel: str, to: str, *, template: str | None = None,
                 data: Mapping[str, Any] | None = None, subject: str | None = None,
                 text: str | None = None, html: str | None = None,
                 idempotency_key: str | None = None, event: str = "notification"
                 ) -> Notification:
    """One notification for a channel kind: email (`to` an address), push (`to` the
    subscription as JSON) or webhook (`to` the URL; `data` the payload)."""
    import orjson

    if channel == "email":
        if template is None and text is None:
            raise InvalidInput("An email needs --template or --text.", field="text")
        return Email(to=to, template=template, data=dict(data or {}), subject=subject,
                     text=text, html=html, idempotency_key=idempotency_key)
    if channel == "push":
        try:
            subscription = orjson.loads(to)
        except orjson.JSONDecodeError:
            raise InvalidInput("For push, --to is the subscription as JSON.",
                               field="to") from None
        if not isinstance(subscription, dict) or "endpoint" not in subscription:
            raise InvalidInput("A subscription has an endpoint and keys.", field="to")
        return WebPush(subscription=subscription, template=template, data=dict(data or {}),
                       payload=None if template else {"title": subject, "body": text},
                       idempotency_key=idempotency_key)
    if channel == "webhook":
        return Webhook(url=to, event=event, payload=dict(data or {}),
                       idempotency_key=idempotency_key)
    raise InvalidInput(f"No channel kind {channel!r} (email, push, webhook).",
                       field="channel")


async def run_worker(url: str | None, channels: Mapping[str, Channel],
                     templates: str | Path | None, options: DeliveryOptions,
                     seconds: float | None = None) -> dict[str, int]:
    """Deliver until SIGINT/SIGTERM (or for `seconds`); returns the worker's counters."""
    notifier = Notifier(url, channels=channels, templates=templates)
    async with notifier:
        deliverer = notifier.deliverer(options)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, deliverer.stop)
        if seconds is not None:
            loop.call_later(seconds, deliverer.stop)
        await deliverer.run()
        s = deliverer.stats
        return {"sent": s.sent, "failed": s.failed, "retried": s.retried,
                "skipped": s.skipped, "suppressed": s.suppressed, "unknown": s.unknown,
                "resent": s.resent}
