"""Webhooks: a JSON POST per notification, signed with HMAC-SHA256.

Headers: `Conveyor-Delivery` and `Idempotency-Key` (both the delivery id, which receivers
use to drop a copy), `Conveyor-Event`, `Conveyor-Timestamp` (seconds) and
`Conveyor-Signature: sha256=<hex HMAC of "<timestamp>.<body>">`. The crash window is closed
by the receiver: a resend after a worker died mid-send carries the same delivery id
(`resend_unknown = True`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
import orjson

from conveyor.notify.channel import Channel, PayloadTooLarge
from conveyor.notify.models import Item
from conveyor.notify.outcomes import Result, http_result

__all__ = ["WebhookChannel", "sign"]


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for a body sent at `timestamp`."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookChannel(Channel):
    """Signed JSON POSTs with httpx."""

    kind: ClassVar[str] = "webhook"
    batch_size = 100
    payload_limit = 1_048_576
    resend_unknown = True

    def __init__(self, secret: str | bytes, *, timeout: float = 10.0, concurrency: int = 50,
                 rate_limit: str | None = None) -> None:
        super().__init__()
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.timeout = timeout
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self._client: httpx.AsyncClient | None = None
        self._limit = asyncio.Semaphore(concurrency)

    def render(self, item: Item) -> tuple[str, bytes, str]:
        """(url, body, event)."""
        body = orjson.dumps({"id": item.id, "event": item.extra.get("event"),
                             "data": item.extra.get("payload")})
        if len(body) > self.payload_limit:
            raise PayloadTooLarge(f"the webhook body is {len(body):,} bytes")
        return item.to, body, str(item.extra.get("event"))

    async def open(self) -> None:
        """One client with a connection pool."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, limits=httpx.Limits(
                max_connections=self.concurrency))

    async def _post(self, item: Item, payload: tuple[str, bytes, str]) -> Result:
        url, body, event = payload
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "Conveyor-Delivery": item.id,
                   "Idempotency-Key": item.id,
                   "Conveyor-Event": event, "Conveyor-Timestamp": stamp,
                   "Conveyor-Signature": sign(self.secret, stamp, body)}
        assert self._client is not None
        async with self._limit:
            try:
                resp = await self._client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                return Result.transient(f"webhook unreachable: {exc!r}"[:300])
        return http_result(resp.status_code, resp.reason_phrase,
                           resp.headers.get("Retry-After"), gone_statuses=frozenset({410}),
                           body=resp.content)

    async def send_many(self, items: Sequence[Item], payloads: Sequence[Any]) -> list[Result]:
        """POST each, concurrently."""
        await self.open()
        return list(await asyncio.gather(*(self._post(i, p) for i, p in zip(items, payloads))))

    async def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
