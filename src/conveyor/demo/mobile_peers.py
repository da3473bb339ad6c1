"""Local FCM (HTTP v1) and APNs protocol peers on HTTP/2 over TLS, for the demo, the
benchmarks and the tests: each verifies credentials (FCM: the OAuth2 JWT-bearer grant and
the bearer tokens it issued; APNs: the ES256 provider token), checks the payload's shape,
records what it received, and answers the providers' documented errors on command
(`faults`: device token -> the errors to give in turn before accepting).

Run one with `H2Server(peer.handle, server_context(cert, key))`.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from conveyor.demo.h2server import Request, Response
from conveyor.notify import jwt

__all__ = ["ApnsPeer", "FcmPeer", "apns_token", "fcm_token"]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_JSON = [("content-type", "application/json; charset=UTF-8")]
_TTL = re.compile(r"^\d{1,10}(\.\d{1,9})?s$")
_FCM_TOKEN = re.compile(r"^[A-Za-z0-9_:\-]{20,4096}$")
_APNS_TOKEN = re.compile(r"^[0-9a-f]{64}$")

# FCM's v1 errors: the FcmError code -> (HTTP status, google.rpc status, message).
FCM_ERRORS = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT",
                         "The registration token is not a valid FCM registration token"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for the project."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push"),
}


def fcm_token(i: int) -> str:
    """A registration-token-shaped string for device i (the demo's and the tests')."""
    return f"dev{i:08d}:APA91b" + "x" * 24


def apns_token(i: int) -> str:
    """A 64-hex-digit APNs device token for device i."""
    return f"{i:064x}"


def _fcm_error(code: str, retry_after: str | None = None) -> Response:
    status, rpc, message = FCM_ERRORS[code]
    body = orjson.dumps({"error": {"code": status, "message": message, "status": rpc,
                                   "details": [{
                                       "@type": "type.googleapis.com/google.firebase.fcm.v1"
                                                ".FcmError", "errorCode": code}]}})
    headers = [*_JSON, ("retry-after", retry_after)] if retry_after else _JSON
    return status, headers, body


@dataclass
class FcmPeer:
    """Google's OAuth2 token endpoint (`POST /token`) and FCM's
    `POST /v1/projects/{project}/messages:send`.

    `public_key`: the service account's (its assertion must verify); `check(token,
    message) -> bool` judges content; `faults`: token -> FcmError codes in turn
    (`"QUOTA_EXCEEDED:2"` adds `Retry-After: 2`).
    """

    project: str
    client_email: str
    public_key: Any
    token_uri: str = ""
    expires_in: int = 3600
    check: Callable[[str, dict[str, Any]], bool] | None = None
    faults: dict[str, list[str]] = field(default_factory=dict)
    keep: bool = True
    clock: Callable[[], float] = time.time
    received: Counter[str] = field(default_factory=Counter)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    bad: int = 0
    _tokens: dict[str, float] = field(default_factory=dict)
    _count: int = 0

    def handle(self, request: Request) -> Response:
        """Answer one request."""
        if request.method == "POST" and request.path == "/token":
            return self._grant(request)
        prefix = f"/v1/projects/{self.project}/messages:send"
        if request.method != "POST" or request.path != prefix:
            return 404, _JSON, b'{"error": {"code": 404, "status": "NOT_FOUND"}}'
        auth = request.headers.get("authorization", "")
        expiry = self._tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if expiry is None or expiry <= self.clock():
            self.refused["UNAUTHENTICATED"] += 1
            return 401, _JSON, orjson.dumps({"error": {
                "code": 401, "status": "UNAUTHENTICATED",
                "message": "Request had invalid authentication credentials."}})
        try:
            message = self._message(request.body)
        except ValueError as exc:
            self.bad += 1
            self.refused["INVALID_ARGUMENT"] += 1
            return 400, _JSON, orjson.dumps({"error": {
                "code": 400, "status": "INVALID_ARGUMENT", "message": str(exc)}})
        token = message["token"]
        planned = self.faults.get(token)
        if planned:
            code, _, retry_after = planned.pop(0).partition(":")
            self.refused[code] += 1
            return _fcm_error(code, retry_after or None)
        if not _FCM_TOKEN.match(token):
            self.refused["INVALID_ARGUMENT"] += 1
            return _fcm_error("INVALID_ARGUMENT")
        self._count += 1
        self.received[token] += 1
        if self.check is not None and not self.check(token, message):
            self.bad += 1
        if self.keep:
            self.messages[token] = message
        name = f"projects/{self.project}/messages/{self._count}"
        return 200, _JSON, orjson.dumps({"name": name})

    def _grant(self, request: Request) -> Response:
        """The JWT-bearer grant (RFC 7523): a signed assertion for an access token."""
        form = parse_qs(request.body.decode())
        try:
            if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                raise ValueError("unsupported_grant_type")
            claims = jwt.verify(form["assertion"][0], self.public_key)
            now = self.clock()
            if claims.get("iss") != self.client_email or FCM_SCOPE not in str(
                    claims.get("scope", "")).split() or (
                    self.token_uri and claims.get("aud") != self.token_uri):
                raise ValueError("invalid_grant: iss, scope or aud")
            iat, exp = float(claims["iat"]), float(claims["exp"])
            if not iat - 300 <= now < exp or exp - iat > 3600:
                raise ValueError("invalid_grant: iat/exp")
        except (ValueError, KeyError, TypeError) as exc:
            return 400, _JSON, orjson.dumps({"error": "invalid_grant",
                                             "error_description": str(exc)})
        self.grants += 1
        access = "ya29.local-" + secrets.token_urlsafe(24)
        self._tokens[access] = self.clock() + self.expires_in
        return 200, _JSON, orjson.dumps({"access_token": access, "token_type": "Bearer",
                                         "expires_in": self.expires_in})

    @staticmethod
    def _message(body: bytes) -> dict[str, Any]:
        """The `message` of a send request, its shape checked as FCM does."""
        if len(body) > 16_384:
            raise ValueError("request too large")
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ValueError("Invalid JSON payload received.") from None
        message = request.get("message") if isinstance(request, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("token"), str):
            raise ValueError("message.token is required (one target)")
        if any(k in message for k in ("topic", "condition")):
            raise ValueError("exactly one of token, topic or condition")
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise ValueError("message.data values must be strings")
        note = message.get("notification", {})
        if not isinstance(note, dict) or set(note) - {"title", "body", "image"}:
            raise ValueError("message.notification has title, body, image")
        android = message.get("android", {})
        if not isinstance(android, dict):
            raise ValueError("message.android is an object")
        if "ttl" in android and not _TTL.match(str(android["ttl"])):
            raise ValueError("android.ttl is a duration such as '3600s'")
        if android.get("priority", "NORMAL") not in ("NORMAL", "HIGH"):
            raise ValueError("android.priority is NORMAL or HIGH")
        if len(orjson.dumps({"data": data, "notification": note})) > 4096:
            raise ValueError("message is too big (4096 bytes)")
        return message


REUSED_AFTER = 0.5
"""Seconds without a request after which an address is taken for a new connection (the
senders the demo restarts take a second or more to come back; a sender re-signing too
soon does so between requests)."""


@dataclass
class ApnsPeer:
    """APNs' `POST /3/device/{token}` with token-based auth.

    `keys`: key id -> the P-256 public key of each .p8 key; `team_id`, `topic`: what the
    provider token's `iss` and the `apns-topic` header must be. Provider tokens older than
    an hour are refused with 403 ExpiredProviderToken; on one connection, a new token
    sooner than 20 minutes after the last with 429 TooManyProviderTokenUpdates (Apple's
    rule is per connection, so several senders may each hold their own token; the demo's
    HTTP/2 server knows a connection by its address, which loopback hands to a new
    connection soon after the old one closed, so an address silent for `REUSED_AFTER`
    seconds counts as a new connection). `faults`:
    device token -> `"410 Unregistered"`-style answers in turn (`"429 TooManyRequests:2"` adds
    `Retry-After: 2`). `check(token, payload, headers) -> bool` judges content.
    """

    keys: dict[str, Any]
    team_id: str
    topic: str
    check: Callable[[str, dict[str, Any], dict[str, str]], bool] | None = None
    faults: dict[str, list[str]] = field(default_factory=dict)
    keep: bool = True
    clock: Callable[[], float] = time.time
    received: Counter[str] = field(default_factory=Counter)
    messages: dict[str, tuple[dict[str, Any], dict[str, str]]] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    tokens_seen: int = 0
    bad: int = 0
    _verified: dict[str, tuple[float, str]] = field(default_factory=dict)
    """Provider tokens verified: token -> (its iat, its key id)."""
    _latest: dict[tuple[int, str], tuple[float, float]] = field(default_factory=dict)
    """(connection, key id) -> (the newest token's iat, when a request last came)."""

    def _refuse(self, status: int, reason: str, retry_after: str | None = None) -> Response:
        self.refused[reason] += 1
        body: dict[str, Any] = {"reason": reason}
        if status == 410:
            body["timestamp"] = int(self.clock() * 1000)
        headers = [*_JSON, ("retry-after", retry_after)] if retry_after else _JSON
        return status, headers, orjson.dumps(body)

    def _provider_token(self, authorization: str, connection: int) -> Response | None:
        if not authorization.startswith("bearer "):
            return self._refuse(403, "MissingProviderToken")
        token = authorization[7:]
        known = self._verified.get(token)
        if known is None:
            try:
                header, _ = jwt.decode(token)
                key = self.keys.get(str(header.get("kid")))
                if key is None:
                    return self._refuse(403, "InvalidProviderToken")
                claims = jwt.verify(token, key)
                if claims.get("iss") != self.team_id:
                    return self._refuse(403, "InvalidProviderToken")
                iat = float(claims["iat"])
            except (ValueError, KeyError, TypeError):
                return self._refuse(403, "InvalidProviderToken")
            known = (iat, str(header["kid"]))
            self._verified[token] = known
            self.tokens_seen += 1
        iat, kid = known
        now = time.monotonic()  # the connection's, not the token's, time: never faked
        last = self._latest.get((connection, kid))
        if last is not None and now - last[1] >= REUSED_AFTER:
            last = None  # a new connection on an address an old one had
        if last is not None and iat > last[0] and iat - last[0] < 20 * 60:
            return self._refuse(429, "TooManyProviderTokenUpdates")
        self._latest[(connection, kid)] = (iat if last is None else max(iat, last[0]), now)
        if self.clock() - iat > 3600:
            return self._refuse(403, "ExpiredProviderToken")
        return None

    def handle(self, request: Request) -> Response:
        """Answer one request."""
        if request.method != "POST" or not request.path.startswith("/3/device/"):
            return self._refuse(405 if request.path.startswith("/3/") else 404,
                                "MethodNotAllowed" if request.path.startswith("/3/")
                                else "BadPath")
        h = request.headers
        refused = self._provider_token(h.get("authorization", ""), request.connection)
        if refused is not None:
            return refused
        device = request.path[len("/3/device/"):]
        planned = self.faults.get(device)
        if planned:
            answer, _, retry_after = planned.pop(0).partition(":")
            status, _, reason = answer.partition(" ")
            return self._refuse(int(status), reason, retry_after or None)
        problem = self._headers_problem(h)
        if problem is None and not _APNS_TOKEN.match(device):
            problem = "BadDeviceToken"
        if problem is not None:
            self.bad += 1
            return self._refuse(400, problem)
        if len(request.body) > 4096:
            return self._refuse(413, "PayloadTooLarge")
        try:
            payload = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            self.bad += 1
            return self._refuse(400, "PayloadEmpty" if not request.body else "BadPayload")
        self.received[device] += 1
        if self.check is not None and not self.check(device, payload, h):
            self.bad += 1
        if self.keep:
            self.messages[device] = (payload, {k: v for k, v in h.items()
                                               if k.startswith("apns-")})
        return 200, [("apns-id", h.get("apns-id") or str(uuid.uuid4()))], b""

    def _headers_problem(self, h: dict[str, str]) -> str | None:
        """The reason for a request header APNs would refuse, or None."""
        if h.get("apns-topic") != self.topic:
            return "MissingTopic" if "apns-topic" not in h else "TopicDisallowed"
        push_type = h.get("apns-push-type", "alert")
        if push_type not in ("alert", "background", "voip", "complication", "fileprovider",
                             "mdm", "location", "liveactivity", "pushtotalk"):
            return "InvalidPushType"
        priority = h.get("apns-priority", "10")
        if priority not in ("1", "5", "10") or (push_type == "background" and
                                                priority == "10"):
            return "BadPriority"
        if not h.get("apns-expiration", "0").isdigit():
            return "BadExpirationDate"
        if len(h.get("apns-collapse-id", "").encode()) > 64:
            return "BadCollapseId"
        apns_id = h.get("apns-id")
        if apns_id is not None:
            try:
                uuid.UUID(apns_id)
            except ValueError:
                return "BadMessageId"
        return None
