"""Real protocol peers on loopback, for the demo and the tests (not the library): an SMTP
sink (aiosmtpd) and a Web Push endpoint (aiohttp) that verifies VAPID and decrypts payloads.

Both record what arrived so a run can check that every notification came exactly once
with the right content, and both can be told to answer with faults (`451`, `550 5.1.1`,
HTTP 410/429/500 with Retry-After) for chosen recipients.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from conveyor.notify.jwt import b64url, b64url_decode

__all__ = ["PushEndpoint", "SmtpSink", "Subscriber", "make_subscriber"]


# SMTP ---------------------------------------------------------------------------------
@dataclass
class SmtpSink:
    """An aiosmtpd handler that keeps messages (or only counts them) and injects faults.

    `faults`: recipient -> list of replies to give, one per attempt (then it accepts).
    `check(rcpt, data) -> bool` judges content when given; otherwise messages are kept.
    """

    keep: bool = True
    check: Callable[[str, bytes], bool] | None = None
    faults: dict[str, list[str]] = field(default_factory=dict)
    messages: list[tuple[str, str, bytes]] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)
    message_ids: Counter[str] = field(default_factory=Counter)
    """Accepted messages by their Message-ID (a copy resent after a crash repeats it)."""
    bad: int = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        """Refuse chosen recipients with a queued reply."""
        planned = self.faults.get(address)
        if planned:
            return planned.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Record the message."""
        data: bytes = envelope.original_content or envelope.content
        at = data.find(b"\r\nMessage-ID: <")
        if at >= 0:
            self.message_ids[data[at + 15:data.index(b">", at)].decode()] += 1
        for rcpt in envelope.rcpt_tos:
            self.received[rcpt] += 1
            if self.check is not None and not self.check(rcpt, data):
                self.bad += 1
            if self.keep:
                self.messages.append((envelope.mail_from, rcpt, data))
        return "250 2.0.0 Ok: queued as " + base64.b32encode(
            time.time_ns().to_bytes(8, "big")).decode().rstrip("=")


# Web Push -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Subscriber:
    """A browser's side of a push subscription: its key pair and auth secret."""

    private_key: Any
    p256dh: str
    auth: bytes

    def subscription(self, endpoint: str) -> dict[str, Any]:
        """The PushSubscription JSON a browser would hand to the application."""
        return {"endpoint": endpoint, "keys": {
            "p256dh": self.p256dh,
            "auth": b64url(self.auth)}}


def make_subscriber() -> Subscriber:
    """A new P-256 key pair and 16-byte auth secret."""
    import os

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return Subscriber(key, b64url(raw), os.urandom(16))


@dataclass
class PushEndpoint:
    """An RFC 8030 push service: `POST /push/{id}`; subscriber `id` decrypts with
    `subscribers[int(id) % len(subscribers)]`.

    Every `verify_every`-th request (1: all) has its VAPID JWT verified (signature, `aud`,
    `exp` at most 24 h ahead) and its aes128gcm body decrypted; `check(id, plaintext)`
    judges the content. `faults`: id -> list of (status, Retry-After or None) to answer
    in turn before accepting.
    """

    subscribers: list[Subscriber]
    verify_every: int = 1
    check: Callable[[str, bytes], bool] | None = None
    faults: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)
    topics: Counter[str] = field(default_factory=Counter)
    """Accepted messages by their `Topic` header (the delivery id, unless set)."""
    payloads: dict[str, bytes] = field(default_factory=dict)
    verified: int = 0
    bad: int = 0
    keep: bool = True
    _count: int = 0

    def app(self) -> Any:
        """The aiohttp application."""
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/push/{sub}", self._push)
        app.router.add_get("/results", self._results)
        return app

    def rsgi(self) -> Any:
        """The same endpoint as an RSGI application (for granian: the demo's)."""
        return _PushRsgi(self)

    def _verify(self, sub: str, headers: Mapping[str, str], body: bytes) -> bytes | None:
        import http_ece  # type: ignore[import-untyped]
        from py_vapid import Vapid02  # type: ignore[import-untyped]

        auth = headers.get("authorization", "")
        if not auth.startswith("vapid ") or not Vapid02.verify(auth):
            return None
        token = dict(p.strip().split("=", 1) for p in auth[6:].split(","))["t"]
        claims = orjson.loads(b64url_decode(token.split(".")[1]))
        host = headers.get("host", "")
        if not str(claims.get("aud", "")).endswith(host) or \
                not time.time() < claims.get("exp", 0) <= time.time() + 86_400:
            return None
        subscriber = self.subscribers[int(sub) % len(self.subscribers)]
        plain: bytes = http_ece.decrypt(body, private_key=subscriber.private_key,
                                        auth_secret=subscriber.auth, version="aes128gcm")
        return plain

    def answer(self, sub: str, headers: Mapping[str, str], body: bytes
               ) -> tuple[int, dict[str, str]]:
        """(status, response headers) for one `POST /push/{sub}`; `headers` have
        lower-case names."""
        if "ttl" not in headers or headers.get("content-encoding") != "aes128gcm":
            return 400, {}
        planned = self.faults.get(sub)
        if planned:
            status, retry_after = planned.pop(0)
            return status, {"Retry-After": retry_after} if retry_after else {}
        if len(body) > 4096:
            return 413, {}
        self._count += 1
        if self._count % self.verify_every == 0:
            try:
                plain = self._verify(sub, headers, body)
            except Exception:  # a bad key or body is the sender's fault: say so
                plain = None
            if plain is None:
                self.bad += 1
                return 401 if self.verify_every == 1 else 400, {}
            self.verified += 1
            if self.check is not None and not self.check(sub, plain):
                self.bad += 1
            if self.keep:
                self.payloads[sub] = plain
        self.received[sub] += 1
        if "topic" in headers:
            self.topics[headers["topic"]] += 1
        return 201, {"Location": f"/m/{sub}-{self._count}"}

    async def _push(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        status, headers = self.answer(request.match_info["sub"],
                                      {k.lower(): v for k, v in request.headers.items()},
                                      body)
        return web.Response(status=status, headers=headers)

    async def _results(self, request: Any) -> Any:
        from aiohttp import web

        counts = Counter(self.received.values())
        return web.json_response({"requests": self._count, "distinct": len(self.received),
                                  "times": {str(k): v for k, v in counts.items()},
                                  "verified": self.verified, "bad": self.bad})


class _PushRsgi:
    """`PushEndpoint.answer` behind granian's RSGI interface (HTTP/1.1 in Rust: the
    endpoint's CPU per request, aiohttp's request and response objects, drops to a
    fraction; every request still goes through the same checks)."""

    def __init__(self, endpoint: PushEndpoint) -> None:
        self.endpoint = endpoint

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        body = await proto()
        path = scope.path
        if scope.method != "POST" or not path.startswith("/push/"):
            proto.response_empty(404, [])
            return
        try:
            status, headers = self.endpoint.answer(path[6:], dict(scope.headers.items()),
                                                   body)
        except Exception:  # a peer bug answers 500 rather than hanging the request
            status, headers = 500, {}
        proto.response_empty(status, list(headers.items()))
