"""Firebase Cloud Messaging, HTTP v1: `POST /v1/projects/{project}/messages:send`, one
message per request (FCM shut its batch endpoint in 2024), multiplexed over a bounded pool
of HTTP/2 connections (`conveyor.notify.http2`).

Credentials are a service account's JSON file. The OAuth2 access token comes from the
JWT-bearer grant (RFC 7523) at the `token_uri` the credentials name (so a test or a proxy
can point it elsewhere): an RS256 assertion for the `firebase.messaging` scope, answered
with a token that is cached and renewed `refresh_margin` seconds before it expires (and at
once when FCM answers 401, retrying that message once).

Outcomes, from FCM's `FcmError` codes: `UNREGISTERED` and an invalid registration token
(`INVALID_ARGUMENT` about the token) are permanent and suppress the token;
`QUOTA_EXCEEDED` (429) and `UNAVAILABLE` (503) are transient, honouring Retry-After (60 s
when FCM gives none for a quota, as its documentation asks), and penalize the channel's
rate limit, by default FCM's project quota of 600,000 a minute; `INTERNAL` is transient;
the rest (`SENDER_ID_MISMATCH`, `THIRD_PARTY_AUTH_ERROR`, a bad message) are permanent.

The delivery id travels as `android.notification.tag` and `apns-collapse-id`, so a
notification resent after a crash between FCM's answer and the ledger write replaces the
one shown instead of showing twice (`resend_unknown = True`); a data-only message carries
no such handle.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson

from conveyor.errors import InvalidInput
from conveyor.notify import jwt
from conveyor.notify.channel import PayloadTooLarge
from conveyor.notify.http2 import H2Error, Http2Channel, unindexed
from conveyor.notify.models import Item
from conveyor.notify.outcomes import Result, retry_after_seconds

__all__ = ["FcmChannel", "ServiceAccount"]

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_URL = "https://fcm.googleapis.com"
_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_PRIORITY = {"high": "HIGH", "normal": "NORMAL"}


class ServiceAccount:
    """The fields of a Google service account key that the grant needs."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        missing = [k for k in ("project_id", "private_key", "client_email", "token_uri")
                   if not info.get(k)]
        if missing:
            raise InvalidInput(f"The service account JSON lacks {', '.join(missing)}.",
                               field="credentials")
        self.project_id = str(info["project_id"])
        self.client_email = str(info["client_email"])
        self.token_uri = str(info["token_uri"])
        self.key_id = str(info.get("private_key_id") or "")
        self.key = jwt.load_private_key(str(info["private_key"]))

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any]) -> ServiceAccount:
        """From a JSON file's path or its parsed content."""
        if isinstance(source, Mapping):
            return cls(source)
        return cls(orjson.loads(Path(source).read_bytes()))

    def assertion(self, now: float) -> str:
        """The signed JWT that the token endpoint exchanges for an access token."""
        claims = {"iss": self.client_email, "scope": SCOPE, "aud": self.token_uri,
                  "iat": int(now), "exp": int(now) + 3600}
        return jwt.sign(claims, self.key, {"kid": self.key_id} if self.key_id else None)


class FcmChannel(Http2Channel):
    """FCM HTTP v1 over HTTP/2. `credentials`: the service account JSON (path or dict)."""

    kind: ClassVar[str] = "fcm"
    batch_size = 200
    payload_limit = 4096  # FCM's limit on a message's data and notification
    resend_unknown = True

    def __init__(self, credentials: str | Path | Mapping[str, Any], *,
                 url: str = FCM_URL, connections: int = 4, timeout: float = 30.0,
                 rate_limit: str | None = "600000/m", refresh_margin: float = 300.0,
                 ssl_context: ssl.SSLContext | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.account = ServiceAccount.load(credentials)
        self.url = url.rstrip("/")
        self.connections = connections
        self.timeout = timeout
        self.rate_limit = rate_limit
        self.refresh_margin = refresh_margin
        self.ssl_context = ssl_context
        self.clock = clock
        self.path = f"/v1/projects/{self.account.project_id}/messages:send"
        self._pool = None
        self._token: tuple[str, float] | None = None  # (access token, expires at)
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0

    # the access token -------------------------------------------------------------
    async def access_token(self, stale: str | None = None) -> str:
        """A valid access token, from the cache unless it is near its end (or is
        `stale`, one FCM just refused)."""
        cached = self._token
        if cached is not None and cached[0] != stale and \
                cached[1] - self.clock() > self.refresh_margin:
            return cached[0]
        async with self._token_lock:
            cached = self._token  # another request may have renewed it meanwhile
            if cached is not None and cached[0] != stale and \
                    cached[1] - self.clock() > self.refresh_margin:
                return cached[0]
            now = self.clock()
            form = {"grant_type": _GRANT, "assertion": self.account.assertion(now)}
            verify: ssl.SSLContext | bool = self.ssl_context or True
            try:
                async with httpx.AsyncClient(http2=True, verify=verify,
                                             timeout=self.timeout) as client:
                    resp = await client.post(self.account.token_uri, data=form)
            except httpx.HTTPError as exc:
                raise H2Error(f"token endpoint unreachable: {exc!r}") from None
            if resp.status_code != 200:
                raise H2Error(f"token endpoint answered {resp.status_code}: "
                              f"{resp.text[:200]}", retryable=resp.status_code >= 500)
            body = resp.json()
            token = str(body["access_token"])
            self._token = (token, now + float(body.get("expires_in", 3600)))
            self.token_fetches += 1
            return token

    # render and send --------------------------------------------------------------
    def render(self, item: Item) -> bytes:
        """The `messages:send` request body."""
        x = item.extra
        message: dict[str, Any] = {"token": item.to}
        if item.template or x.get("title") is not None or x.get("body") is not None:
            parts = self.render_template(item, x.get("title") or "", x.get("body") or "")
            message["notification"] = {"title": parts.subject, "body": parts.text}
        if x.get("payload"):
            message["data"] = {str(k): str(v) for k, v in x["payload"].items()}
        size = len(orjson.dumps([message.get("notification"), message.get("data")]))
        if size > self.payload_limit:
            raise PayloadTooLarge(f"the FCM message is {size:,} bytes, over "
                                  f"{self.payload_limit:,}")
        android: dict[str, Any] = {}
        if x.get("collapse_key"):
            android["collapse_key"] = str(x["collapse_key"])
        if x.get("ttl") is not None:
            android["ttl"] = f"{int(x['ttl'])}s"
        if x.get("priority"):
            priority = _PRIORITY.get(str(x["priority"]).lower())
            if priority is None:
                raise InvalidInput("FCM priority is 'high' or 'normal'.", field="priority")
            android["priority"] = priority
        if "notification" in message:  # the resend handle: replaces instead of doubling
            android["notification"] = {"tag": item.id}
            message["apns"] = {"headers": {"apns-collapse-id": item.id}}
        if android:
            message["android"] = android
        return orjson.dumps({"message": message})

    def where(self) -> str:
        """FCM, as the log names it."""
        return f"FCM {self.url}"

    async def _post(self, body: bytes) -> Result:
        assert self._pool is not None
        token = ""
        asked = self.reach.now()
        for attempt in (1, 2):
            try:
                token = await self.access_token(stale=token or None)
                status, headers, content = await self._pool.request(
                    "POST", self.path, [unindexed("authorization", f"Bearer {token}"),
                                        ("content-type", "application/json")], body)
            except H2Error as exc:
                if not exc.retryable:
                    return Result.permanent(f"FCM: {exc}"[:1000])
                self.unreachable(exc, "a notification not sent")
                return Result.transient(f"FCM unreachable: {exc}"[:300])
            self.reached(asked)
            if status == 200:
                return Result.sent(str(orjson.loads(content).get("name") or "") or None)
            code, message = _error(content)
            if status == 401 and code != "THIRD_PARTY_AUTH_ERROR" and attempt == 1:
                continue  # our access token was refused: renew it, try once more
            return _classify(status, code, message, headers.get("retry-after"))
        raise AssertionError("unreachable")



def _error(content: bytes) -> tuple[str, str]:
    """(the FcmError code, else the google.rpc status; the message) of an error answer."""
    try:
        error = orjson.loads(content)["error"]
        code = str(error.get("status") or "")
        for detail in error.get("details") or []:
            if detail.get("errorCode"):
                code = str(detail["errorCode"])
        return code, str(error.get("message") or "")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return "", content[:200].decode(errors="replace")


def _classify(status: int, code: str, message: str, retry_after: str | None) -> Result:
    """Class an FCM error (see the module docstring)."""
    detail = f"HTTP {status} {code}: {message}".strip()[:1000]
    wait = retry_after_seconds(retry_after)
    if code == "UNREGISTERED":
        return Result.permanent(detail, gone=True)
    if code == "INVALID_ARGUMENT" and "registration token" in message.lower():
        return Result.permanent(detail, gone=True)
    if status == 429 or code in ("QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"):
        return Result.transient(detail, 60.0 if wait is None else wait)
    if status >= 500 or code in ("UNAVAILABLE", "INTERNAL"):
        return Result.transient(detail, wait)
    return Result.permanent(detail)
