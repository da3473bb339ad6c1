"""What an application asks to send (`Email`, `WebPush`, `Webhook`, `Apprise`) and the
compact form a notification travels in through the queue (`Item`, packed in envelopes).

Every notification has a delivery id: the `idempotency_key` given, or one derived from the
channel, recipient, template and data, so sending the same notification twice (a retried
HTTP request, a re-run batch job) records and delivers it once.

A templated notification's `locale` (`pt-BR`) picks the template's locale by its fallback
chain (`pt-BR`, `pt`, then the template's default; see `conveyor.locales`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

__all__ = ["Apns", "Apprise", "Email", "Envelope", "Fcm", "Item", "Notification", "WebPush",
           "Webhook", "delivery_id"]


def delivery_id(channel: str, recipient: str, key: str | None,
                content: Mapping[str, Any]) -> str:
    """The delivery id: from the idempotency key if given, else from the content."""
    if key is not None:
        source = f"{channel}\x1f{key}".encode()
    else:
        source = f"{channel}\x1f{recipient}\x1f".encode() + orjson.dumps(
            content, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(source, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Email:
    """An email: a template (with `data`) or literal `subject`/`text`/`html`.

    `bulk=True` adds `List-Unsubscribe` and `List-Unsubscribe-Post: List-Unsubscribe=One-
    Click` (RFC 8058) pointing at `unsubscribe_url` (or the channel's default).
    """

    to: str
    template: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    sender: str | None = None
    bulk: bool = False
    unsubscribe_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    locale: str | None = None
    channel: str = "email"


@dataclass(frozen=True, slots=True)
class WebPush:
    """A Web Push message to one subscription (`{"endpoint", "keys": {"p256dh", "auth"}}`),
    its payload a template's text or the given JSON-able `payload`."""

    subscription: Mapping[str, Any]
    template: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    payload: Any = None
    ttl: int = 86_400
    urgency: str | None = None
    topic: str | None = None
    idempotency_key: str | None = None
    locale: str | None = None
    channel: str = "push"


@dataclass(frozen=True, slots=True)
class Webhook:
    """A JSON POST to `url`, signed with the channel's secret."""

    url: str
    event: str
    payload: Any = None
    idempotency_key: str | None = None
    channel: str = "webhook"


@dataclass(frozen=True, slots=True)
class Apprise:
    """A message to any Apprise URL (`mailto://`, `tgram://`, `json://`, ...)."""

    url: str
    title: str = ""
    body: str = ""
    template: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    locale: str | None = None
    channel: str = "apprise"


@dataclass(frozen=True, slots=True)
class Fcm:
    """A Firebase Cloud Messaging (HTTP v1) message to one registration token.

    The notification's title and body come from a template (with `data`) or `title`/`body`;
    `payload` is FCM's data payload (string values; the app's own keys). `collapse_key`,
    `ttl` (seconds) and `priority` (`"high"`/`"normal"`) go in the Android options.
    """

    token: str
    template: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    title: str | None = None
    body: str | None = None
    payload: Mapping[str, str] | None = None
    collapse_key: str | None = None
    ttl: int | None = None
    priority: str | None = None
    idempotency_key: str | None = None
    locale: str | None = None
    channel: str = "fcm"


@dataclass(frozen=True, slots=True)
class Apns:
    """An Apple Push Notification service message to one device token.

    The alert's title and body come from a template (with `data`) or `title`/`body`;
    `payload` adds custom keys beside `aps`. `push_type`, `priority` (10, 5 or 1),
    `expiration` (UNIX seconds; 0: deliver now or never), `collapse_id` and `topic` (the
    channel's bundle id by default) become the `apns-*` headers.
    """

    token: str
    template: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    title: str | None = None
    body: str | None = None
    payload: Mapping[str, Any] | None = None
    badge: int | None = None
    sound: str | None = None
    push_type: str = "alert"
    priority: int | None = None
    expiration: int | None = None
    collapse_id: str | None = None
    topic: str | None = None
    idempotency_key: str | None = None
    locale: str | None = None
    channel: str = "apns"


Notification = Email | WebPush | Webhook | Apprise | Fcm | Apns


class Item(NamedTuple):
    """One notification as queued: delivery id, recipient, template, data, the rest of
    its fields (`extra`), and when it was enqueued (ms)."""

    id: str
    to: str
    template: str | None
    data: Mapping[str, Any]
    extra: Mapping[str, Any]
    enqueued_at: int


def to_item(n: Notification, enqueued_at: int) -> Item:
    """The queued form of a notification."""
    if isinstance(n, Email):
        to = n.to
        extra: dict[str, Any] = {k: v for k, v in (
            ("subject", n.subject), ("text", n.text), ("html", n.html),
            ("sender", n.sender), ("unsubscribe_url", n.unsubscribe_url)) if v is not None}
        if n.bulk:
            extra["bulk"] = True
        if n.headers:
            extra["headers"] = dict(n.headers)
        template, data = n.template, n.data
    elif isinstance(n, WebPush):
        to = str(n.subscription["endpoint"])
        extra = {"subscription": dict(n.subscription), "ttl": n.ttl}
        for k, v in (("payload", n.payload), ("urgency", n.urgency), ("topic", n.topic)):
            if v is not None:
                extra[k] = v
        template, data = n.template, n.data
    elif isinstance(n, Fcm | Apns):
        to, template, data = n.token, n.template, n.data
        extra = {k: v for k, v in _mobile_fields(n) if v is not None}
    elif isinstance(n, Webhook):
        to, template, data = n.url, None, {}
        extra = {"event": n.event, "payload": n.payload}
    else:
        to, template, data = n.url, n.template, n.data
        extra = {"title": n.title, "body": n.body}
    locale = getattr(n, "locale", None)  # a webhook has none
    if locale is not None:  # the template's locale chain starts here (notify.locales)
        extra["locale"] = locale
    content = {"t": template, "d": data, "x": extra}
    return Item(delivery_id(n.channel, to, n.idempotency_key, content), to, template,
                data, extra, enqueued_at)


def _mobile_fields(n: Fcm | Apns) -> list[tuple[str, Any]]:
    """The optional fields of a mobile push, as `Item.extra` keys."""
    fields: list[tuple[str, Any]] = [("title", n.title), ("body", n.body),
                                     ("payload", dict(n.payload) if n.payload else None)]
    if isinstance(n, Fcm):
        return [*fields, ("collapse_key", n.collapse_key), ("ttl", n.ttl),
                ("priority", n.priority)]
    return [*fields, ("badge", n.badge), ("sound", n.sound),
            ("push_type", None if n.push_type == "alert" else n.push_type),
            ("priority", n.priority), ("expiration", n.expiration),
            ("collapse_id", n.collapse_id), ("topic", n.topic)]


class Envelope(NamedTuple):
    """Notifications of one channel packed in one queue message (a bulk send is a few
    thousand queue messages, not a million), and the attempt they are on."""

    channel: str
    attempt: int
    items: list[Item]

    def dumps(self) -> str:
        """The queue message body."""
        return orjson.dumps({"ch": self.channel, "a": self.attempt,
                             "n": [list(i) for i in self.items]}).decode()

    @classmethod
    def loads(cls, text: str) -> Envelope:
        """Decode a queue message body."""
        raw = orjson.loads(text)
        return cls(raw["ch"], int(raw["a"]), [Item(*i) for i in raw["n"]])
