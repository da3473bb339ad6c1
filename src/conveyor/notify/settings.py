"""Channels and notifications from plain settings (what `conveyor notify worker` and
`conveyor notify send` are given), and a delivery worker that runs until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.digits import host_port
from conveyor.errors import InvalidInput
from conveyor.notify.channel import Channel
from conveyor.notify.delivery_options import DeliveryOptions
from conveyor.notify.models import Apns, Email, Fcm, Notification, Webhook, WebPush
from conveyor.notify.notifier import Notifier

__all__ = ["ChannelSettings", "notification", "run_worker"]


@dataclass(frozen=True)
class ChannelSettings:
    """Which channels a worker runs and how they reach their providers.

    `smtp`: `host:port` (the email channel); `vapid_key`: a PEM file (the push channel, with
    `vapid_sub` as the `sub` claim); `webhook_secret`: the webhook channel's HMAC secret;
    `fcm_credentials`: a service account JSON file (the fcm channel); `apns_key`: a .p8 file
    with `apns_key_id`, `apns_team_id` and `apns_topic` (the apns channel); `ca_file`: extra
    certificates to trust for FCM and APNs (a proxy's, or a local peer's).
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
    fcm_credentials: str | None = None
    fcm_url: str | None = None
    fcm_rate: str | None = "600000/m"
    apns_key: str | None = None
    apns_key_id: str | None = None
    apns_team_id: str | None = None
    apns_topic: str | None = None
    apns_url: str | None = None
    apns_rate: str | None = None
    ca_file: str | None = None

    def channels(self) -> dict[str, Channel]:
        """The configured channels by name (`email`, `push`, `webhook`, `fcm`, `apns`)."""
        from conveyor.notify.smtp import SmtpChannel
        from conveyor.notify.webhook import WebhookChannel
        from conveyor.notify.webpush import WebPushChannel

        made: dict[str, Channel] = {}
        if self.smtp:
            if (address := host_port(self.smtp)) is None:
                raise InvalidInput("--smtp must be host:port.", field="smtp")
            made["email"] = SmtpChannel(
                *address, sender=self.sender, starttls=self.starttls, tls=self.tls,
                username=self.username, password=self.password, pool_size=self.pool_size,
                rate_limit=self.email_rate)
        if self.vapid_key:
            made["push"] = WebPushChannel(Path(self.vapid_key).read_bytes(),
                                          {"sub": self.vapid_sub}, rate_limit=self.push_rate)
        if self.webhook_secret:
            made["webhook"] = WebhookChannel(self.webhook_secret)
        made.update(self._mobile())
        if not made:
            raise InvalidInput("Configure at least one channel (--smtp, --vapid-key, "
                               "--webhook-secret-env, --fcm-credentials or --apns-key).")
        return made

    def _mobile(self) -> dict[str, Channel]:
        """The fcm and apns channels, when configured."""
        if not self.fcm_credentials and not self.apns_key:
            return {}  # their modules (h2, cryptography) stay unimported
        import ssl

        from conveyor.notify.apns import APNS_URL, ApnsChannel
        from conveyor.notify.fcm import FCM_URL, FcmChannel

        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        made: dict[str, Channel] = {}
        if self.fcm_credentials:
            made["fcm"] = FcmChannel(Path(self.fcm_credentials), url=self.fcm_url or FCM_URL,
                                     rate_limit=self.fcm_rate, ssl_context=context)
        if self.apns_key:
            missing = [flag for flag, value in (("--apns-key-id", self.apns_key_id),
                                                ("--apns-team-id", self.apns_team_id),
                                                ("--apns-topic", self.apns_topic)) if not value]
            if missing:
                raise InvalidInput(f"The apns channel also needs {', '.join(missing)}.",
                                   field="apns_key")
            made["apns"] = ApnsChannel(
                Path(self.apns_key), str(self.apns_key_id), str(self.apns_team_id),
                str(self.apns_topic), url=self.apns_url or APNS_URL,
                rate_limit=self.apns_rate, ssl_context=context)
        return made


def notification(channel: str, to: str, *, template: str | None = None,
                 data: Mapping[str, Any] | None = None, subject: str | None = None,
                 text: str | None = None, html: str | None = None,
                 idempotency_key: str | None = None, event: str = "notification",
                 locale: str | None = None) -> Notification:
    """One notification for a channel kind: email (`to` an address), push (`to` the
    subscription as JSON), webhook (`to` the URL; `data` the payload), fcm or apns (`to` the
    device token; `subject` and `text` the title and body). `locale` picks a template's
    locale by its fallback chain."""
    import orjson

    if channel == "email":
        if template is None and text is None:
            raise InvalidInput("An email needs --template or --text.", field="text")
        return Email(to=to, template=template, data=dict(data or {}), subject=subject,
                     text=text, html=html, idempotency_key=idempotency_key, locale=locale)
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
                       idempotency_key=idempotency_key, locale=locale)
    if channel == "webhook":
        return Webhook(url=to, event=event, payload=dict(data or {}),
                       idempotency_key=idempotency_key)
    if channel in ("fcm", "apns"):
        if template is None and text is None:
            raise InvalidInput(f"A {channel} push needs --template or --text.", field="text")
        kind = Fcm if channel == "fcm" else Apns
        return kind(token=to, template=template, data=dict(data or {}), title=subject,
                    body=text, idempotency_key=idempotency_key, locale=locale)
    raise InvalidInput(f"No channel kind {channel!r} (email, push, webhook, fcm, apns).",
                       field="channel")


async def run_worker(url: str | None, channels: Mapping[str, Channel],
                     templates: str | Path | None, options: DeliveryOptions,
                     seconds: float | None = None) -> dict[str, int]:
    """Deliver until SIGINT/SIGTERM (or for `seconds`); returns the worker's counters."""
    if not logging.getLogger().handlers:
        # Run alone (`conveyor notify worker`): say on stderr, as `conveyor worker` does,
        # when a provider or the database stops answering and when it is back (INFO).
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d "
                            "%(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line a webhook POST
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
