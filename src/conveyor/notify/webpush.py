"""Web Push (RFC 8030 transport, RFC 8291 aes128gcm encryption, RFC 8292 VAPID).

`conveyor.notify.ece` encrypts each payload; the VAPID `Authorization` header is signed
once per push service origin and reused for `vapid_ttl` seconds (signing per message, as
`webpush_async()` does, costs more than the encryption). One keep-alive pool
(`conveyor.notify.http1`) serves every push service.

Outcomes: 201/202 sent (the push service's `Location` is the provider id); 404/410 the
subscription is gone (dead-lettered and suppressed); 429/5xx transient honouring
Retry-After; 400/401/403/413 permanent.

The crash window: Web Push has no idempotency key, but it has a collapse handle. Every
message carries `Topic: <delivery id>` (RFC 8030 5.4; the 32 hex characters fit its 32
URL-safe base64 characters) unless the notification names its own topic, so a copy resent
after a worker died mid-send replaces the first at the push service while that one is
still undelivered. A device that already got the first sees the second too: that is the
extra copy the delivery bound counts. `DeliveryOptions.hold_unknown` records such
notifications `unknown` instead of resending them.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from conveyor.errors import InvalidInput
from conveyor.notify.channel import Channel, PayloadTooLarge
from conveyor.notify.ece import encrypt
from conveyor.notify.http1 import H1Error, H1Pool, split_url
from conveyor.notify.jwt import b64url_decode
from conveyor.notify.models import Item
from conveyor.notify.outcomes import Result, http_result

__all__ = ["WebPushChannel", "topic_for"]

_GONE = frozenset({404, 410})
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_URGENCIES = frozenset({"very-low", "low", "normal", "high"})


def topic_for(delivery_id: str) -> str:
    """A valid `Topic` (at most 32 URL-safe base64 characters) for a delivery id: the id
    itself when it is one (ours are 32 hex characters), else a hash of it."""
    if _TOPIC.fullmatch(delivery_id):
        return delivery_id
    return hashlib.blake2b(delivery_id.encode(), digest_size=16).hexdigest()


class WebPushChannel(Channel):
    """Web Push with VAPID. `vapid_private_key`: PEM text/bytes or a base64url raw key."""

    kind: ClassVar[str] = "push"
    batch_size = 100
    payload_limit = 3993  # RFC 8291 4: a 4,096-byte body less its header, delimiter and tag
    resend_unknown = True  # with the same Topic (see the module docstring)

    def __init__(self, vapid_private_key: str | bytes, vapid_claims: Mapping[str, Any], *,
                 concurrency: int = 64, timeout: float = 30.0, vapid_ttl: int = 12 * 3600,
                 rate_limit: str | None = None) -> None:
        super().__init__()
        from py_vapid import Vapid02  # type: ignore[import-untyped]

        key = vapid_private_key
        if isinstance(key, bytes) or "BEGIN" in key:
            self.vapid = Vapid02.from_pem(key if isinstance(key, bytes) else key.encode())
        else:
            self.vapid = Vapid02.from_string(key)
        self.claims = dict(vapid_claims)
        self.concurrency = concurrency
        self.timeout = timeout
        self.vapid_ttl = vapid_ttl
        self.rate_limit = rate_limit
        self._headers: dict[str, tuple[float, str]] = {}
        self._pool: H1Pool | None = None

    def vapid_header(self, endpoint: str) -> str:
        """`Authorization: vapid t=..., k=...` for the endpoint's origin, cached."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        cached = self._headers.get(audience)
        now = time.time()
        if cached is not None and cached[0] > now:
            return cached[1]
        claims = {**self.claims, "aud": audience, "exp": int(now) + self.vapid_ttl + 600}
        header = str(self.vapid.sign(claims)["Authorization"])
        self._headers[audience] = (now + self.vapid_ttl, header)
        return header

    def render(self, item: Item) -> tuple[str, dict[str, str], bytes]:
        """(endpoint, headers, encrypted body)."""
        x = item.extra
        if item.template:
            parts = self.render_template(item)
            data = orjson.dumps({"title": parts.subject, "body": parts.text, "id": item.id})
        else:
            payload = x.get("payload")
            data = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
        if len(data) > self.payload_limit:
            raise PayloadTooLarge(f"the push payload is {len(data):,} bytes, over "
                                  f"{self.payload_limit:,}")
        subscription = x["subscription"]
        keys = subscription["keys"]
        body = encrypt(b64url_decode(keys["p256dh"]), b64url_decode(keys["auth"]), data)
        endpoint = str(subscription["endpoint"])
        try:
            split_url(endpoint)
        except ValueError:
            raise InvalidInput("A push subscription's endpoint is an http(s) URL.",
                               field="subscription") from None
        headers = {"TTL": str(int(x.get("ttl", 86_400))), "Content-Encoding": "aes128gcm",
                   "Content-Type": "application/octet-stream",
                   "Authorization": self.vapid_header(endpoint)}
        if x.get("urgency"):
            if x["urgency"] not in _URGENCIES:
                raise InvalidInput("Urgency is very-low, low, normal or high (RFC 8030 "
                                   "5.3).", field="urgency")
            headers["Urgency"] = str(x["urgency"])
        topic = str(x["topic"]) if x.get("topic") else topic_for(item.id)
        if not _TOPIC.fullmatch(topic):
            raise InvalidInput("A Topic is 1-32 URL-safe base64 characters (RFC 8030 5.4).",
                               field="topic")
        headers["Topic"] = topic
        return endpoint, headers, body

    async def open(self) -> None:
        """One keep-alive pool for every push service."""
        if self._pool is None:
            self._pool = H1Pool(limit=self.concurrency, timeout=self.timeout)

    async def _post(self, payload: tuple[str, dict[str, str], bytes]) -> Result:
        assert self._pool is not None
        endpoint, headers, body = payload
        try:
            status, reason, answer, content = await self._pool.request(
                "POST", endpoint, headers, body)
        except H1Error as exc:
            return Result.transient(f"push service unreachable: {exc}"[:300])
        except ValueError as exc:
            return Result.permanent(f"cannot send: {exc}"[:300])
        return http_result(status, reason, answer.get("retry-after"), gone_statuses=_GONE,
                           provider_id=answer.get("location"), body=content)

    async def send_many(self, items: Sequence[Item], payloads: Sequence[Any]) -> list[Result]:
        """POST each message (Web Push takes one per request), concurrently."""
        if self._pool is None:
            await self.open()
        return list(await asyncio.gather(*(self._post(p) for p in payloads)))

    async def close(self) -> None:
        """Close the pool's connections."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
