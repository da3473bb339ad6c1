"""Apple Push Notification service: `POST /3/device/{token}` over HTTP/2 and TLS, one
notification per stream, multiplexed over a bounded pool (`conveyor.notify.http2`).

Token-based auth: an ES256 JWT (`kid`: the key id, `iss`: the team id, `iat`) signed with
the .p8 key, reused for every request and renewed after `token_ttl` seconds (40 minutes by
default: Apple refuses tokens older than an hour, and answers 429
TooManyProviderTokenUpdates to tokens renewed sooner than every 20 minutes). A 403
ExpiredProviderToken renews it at once and retries that notification once.

Headers: `apns-topic` (the bundle id), `apns-push-type`, `apns-priority`,
`apns-expiration`, `apns-collapse-id` and `apns-id`. The delivery id is the default
collapse id and the `apns-id` (as a UUID), so a notification resent after a crash between
Apple's answer and the ledger write is shown once (`resend_unknown = True`).

Outcomes: 200 sent (`apns-id` is the provider id); 410 Unregistered / ExpiredToken and 400
BadDeviceToken are permanent and suppress the token; 429 and 5xx are transient (429
honours Retry-After when given and then penalizes the channel's rate limit); other 4xx
are permanent.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import orjson

from conveyor.errors import InvalidInput
from conveyor.notify import jwt
from conveyor.notify.channel import PayloadTooLarge
from conveyor.notify.http2 import H2Error, Http2Channel, unindexed
from conveyor.notify.models import Item
from conveyor.notify.outcomes import Result, retry_after_seconds

__all__ = ["APNS_SANDBOX_URL", "APNS_URL", "ApnsChannel"]

APNS_URL = "https://api.push.apple.com"
APNS_SANDBOX_URL = "https://api.sandbox.push.apple.com"
_PUSH_TYPES = frozenset({"alert", "background", "voip", "complication", "fileprovider",
                         "mdm", "location", "liveactivity", "pushtotalk"})


class ApnsChannel(Http2Channel):
    """APNs with token-based auth. `key`: the .p8 key (PEM text/bytes or a path)."""

    kind: ClassVar[str] = "apns"
    batch_size = 200
    payload_limit = 4096  # Apple's limit for a regular remote notification
    resend_unknown = True

    def __init__(self, key: str | bytes | Path, key_id: str, team_id: str, topic: str, *,
                 url: str = APNS_URL, connections: int = 4, timeout: float = 30.0,
                 token_ttl: float = 40 * 60, rate_limit: str | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        if not 20 * 60 <= token_ttl <= 60 * 60:
            raise InvalidInput("APNs provider tokens are renewed between 20 and 60 minutes.",
                               field="token_ttl")
        pem = key.read_bytes() if isinstance(key, Path) else key
        self.key = jwt.load_private_key(pem)
        self.key_id, self.team_id, self.topic = key_id, team_id, topic
        self.url = url.rstrip("/")
        self.connections = connections
        self.timeout = timeout
        self.token_ttl = token_ttl
        self.rate_limit = rate_limit
        self.ssl_context = ssl_context
        self.clock = clock
        self._pool = None
        self._token: tuple[str, float] | None = None  # (bearer JWT, issued at)
        self.tokens_made = 0

    def provider_token(self, stale: str | None = None) -> str:
        """The bearer JWT, renewed when older than `token_ttl` (or when it is `stale`,
        one Apple just called expired; one renewed meanwhile by another request is kept)."""
        now = self.clock()
        cached = self._token
        if cached is not None and cached[0] != stale and now - cached[1] < self.token_ttl:
            return cached[0]
        token = jwt.sign({"iss": self.team_id, "iat": int(now)}, self.key,
                         {"kid": self.key_id})
        self._token = (token, now)
        self.tokens_made += 1
        return token

    def render(self, item: Item) -> tuple[str, list[tuple[str, str]], bytes]:
        """(path, headers without authorization, body)."""
        x = item.extra
        push_type = str(x.get("push_type") or "alert")
        if push_type not in _PUSH_TYPES:
            raise InvalidInput(f"No APNs push type {push_type!r}.", field="push_type")
        aps: dict[str, Any] = {}
        if push_type == "background":
            aps["content-available"] = 1
        if item.template or x.get("title") is not None or x.get("body") is not None:
            parts = self.render_template(item, x.get("title") or "", x.get("body") or "")
            aps["alert"] = {"title": parts.subject, "body": parts.text}
        for key in ("badge", "sound"):
            if x.get(key) is not None:
                aps[key] = x[key]
        body = orjson.dumps({**(x.get("payload") or {}), "aps": aps})
        if len(body) > self.payload_limit:
            raise PayloadTooLarge(f"the APNs payload is {len(body):,} bytes, over "
                                  f"{self.payload_limit:,}")
        priority = x.get("priority") or (5 if push_type == "background" else 10)
        if int(priority) not in (1, 5, 10):
            raise InvalidInput("apns-priority is 10, 5 or 1.", field="priority")
        collapse = str(x.get("collapse_id") or item.id)
        if len(collapse.encode()) > 64:
            raise InvalidInput("apns-collapse-id is at most 64 bytes.", field="collapse_id")
        headers = [("apns-topic", str(x.get("topic") or self.topic)),
                   ("apns-push-type", push_type), ("apns-priority", str(int(priority))),
                   ("apns-collapse-id", collapse) if x.get("collapse_id") else
                   unindexed("apns-collapse-id", collapse),
                   unindexed("apns-id", _apns_id(item.id))]
        if x.get("expiration") is not None:
            headers.append(("apns-expiration", str(int(x["expiration"]))))
        return f"/3/device/{item.to}", headers, body

    def where(self) -> str:
        """APNs, as the log names it."""
        return f"APNs {self.url}"

    async def _post(self, payload: tuple[str, list[tuple[str, str]], bytes]) -> Result:
        assert self._pool is not None
        path, headers, body = payload
        token: str | None = None
        asked = self.reach.now()
        for attempt in (1, 2):
            token = self.provider_token(stale=token)
            try:
                status, answer, content = await self._pool.request(
                    "POST", path, [unindexed("authorization", f"bearer {token}"), *headers],
                    body)
            except H2Error as exc:
                if not exc.retryable:
                    return Result.permanent(f"APNs: {exc}"[:1000])
                self.unreachable(exc, "a notification not sent")
                return Result.transient(f"APNs unreachable: {exc}"[:300])
            self.reached(asked)
            if status == 200:
                return Result.sent(answer.get("apns-id"))
            reason = _reason(content)
            if status == 403 and reason == "ExpiredProviderToken" and attempt == 1:
                continue  # renew the provider token and try once more
            return _classify(status, reason, answer.get("retry-after"))
        raise AssertionError("unreachable")



def _apns_id(delivery_id: str) -> str:
    """The delivery id as the UUID APNs takes in `apns-id` (derived if not hex)."""
    try:
        return str(uuid.UUID(hex=delivery_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, delivery_id))


def _reason(content: bytes) -> str:
    try:
        return str(orjson.loads(content).get("reason") or "")
    except (orjson.JSONDecodeError, AttributeError):
        return content[:200].decode(errors="replace")


def _classify(status: int, reason: str, retry_after: str | None) -> Result:
    """Class an APNs error (see the module docstring)."""
    detail = f"HTTP {status} {reason}".strip()[:1000]
    if status == 410 or reason == "BadDeviceToken":
        return Result.permanent(detail, gone=True)
    if status == 429 or status >= 500:
        return Result.transient(detail, retry_after_seconds(retry_after))
    return Result.permanent(detail)
