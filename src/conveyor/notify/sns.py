"""Amazon SES feedback through SNS: the SNS message's signature verified, then its SES
bounce or complaint notification read.

SNS signs a canonical string of the message's fields with the key of the certificate at
`SigningCertURL` (RSA; SHA1 for `SignatureVersion` 1, SHA256 for 2). The certificate URL
must be https on a host matching `cert_hosts` (by default `sns.<region>.amazonaws.com`) and
is fetched once and cached; `topics`, when given, is the allow-list of topic ARNs. A
`SubscriptionConfirmation` is confirmed by fetching its `SubscribeURL` (same host rule).

SES notifications (`notificationType`, or `eventType` for SES event publishing):
`Bounce` of type `Permanent` is hard, `Transient`/`Undetermined` soft; `Complaint` is a
complaint; `Delivery` and the rest yield nothing.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Collection
from typing import Any
from urllib.parse import urlsplit

import orjson

from conveyor.notify.feedback import COMPLAINT, HARD, SOFT, Feedback, FeedbackRefused, _event

__all__ = ["SnsVerifier", "fetcher", "ses_events"]

AWS_CERT_HOSTS = r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                 "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                "Token", "TopicArn", "Type"),
}

Fetch = Callable[[str], Awaitable[bytes]]


def fetcher(ca_file: str | None = None) -> Fetch:
    """GET a URL's bytes with httpx (HTTP/1.1 or 2), trusting `ca_file` too if given."""
    import ssl

    import httpx

    async def fetch(url: str) -> bytes:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) \
            if ca_file else True
        async with httpx.AsyncClient(timeout=10.0, http2=True, verify=verify) as client:
            resp = await client.get(url)
            resp.raise_for_status()
            return resp.content
    return fetch


class SnsVerifier:
    """Verifies SNS messages (see the module docstring); `fetch` gets a URL's bytes
    (httpx by default; a test passes its own CA through it)."""

    def __init__(self, *, topics: Collection[str] | None = None,
                 cert_hosts: str = AWS_CERT_HOSTS, fetch: Fetch | None = None) -> None:
        self.topics = set(topics) if topics else None
        self.cert_hosts = re.compile(cert_hosts)
        self.fetch = fetch or fetcher()
        self._certs: dict[str, Any] = {}
        self.confirmed: list[str] = []

    def _check_url(self, url: str, what: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not self.cert_hosts.fullmatch(parts.hostname or ""):
            raise FeedbackRefused(f"The SNS {what} is not on an allowed https host.", 401)

    async def verify(self, body: bytes) -> dict[str, Any]:
        """The SNS message, its signature verified; raises `FeedbackRefused`."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FeedbackRefused("The body is not JSON.") from None
        if not isinstance(message, dict) or message.get("Type") not in _SIGNED:
            raise FeedbackRefused("Not an SNS message (Type).")
        if not message.get("Signature") or not message.get("SigningCertURL"):
            raise FeedbackRefused("The SNS message is unsigned.", 401)
        version = str(message.get("SignatureVersion") or "1")
        if version not in ("1", "2"):
            raise FeedbackRefused("Unknown SNS SignatureVersion.", 401)
        if self.topics is not None and message.get("TopicArn") not in self.topics:
            raise FeedbackRefused("The SNS topic is not one this endpoint accepts.", 403)
        url = str(message["SigningCertURL"])
        self._check_url(url, "SigningCertURL")
        key = self._certs.get(url)
        if key is None:
            try:
                key = x509.load_pem_x509_certificate(await self.fetch(url)).public_key()
            except Exception:  # any failure to get a key is the sender's problem: refuse
                raise FeedbackRefused("The SNS signing certificate cannot be read.",
                                      401) from None
            self._certs[url] = key
        signed = "".join(f"{name}\n{message[name]}\n" for name in _SIGNED[message["Type"]]
                         if message.get(name) is not None).encode()
        try:
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(base64.b64decode(message["Signature"]), signed, padding.PKCS1v15(),
                       hashes.SHA1() if version == "1" else hashes.SHA256())
        except (InvalidSignature, AssertionError, ValueError, binascii.Error):
            raise FeedbackRefused("The SNS signature does not verify.", 401) from None
        return message

    async def receive(self, body: bytes) -> list[Feedback]:
        """Verify one POST from SNS; confirm a subscription, or read SES's events."""
        message = await self.verify(body)
        if message["Type"] == "SubscriptionConfirmation":
            url = str(message.get("SubscribeURL") or "")
            self._check_url(url, "SubscribeURL")
            await self.fetch(url)
            self.confirmed.append(str(message.get("TopicArn")))
            return []
        if message["Type"] != "Notification":
            return []
        return ses_events(message.get("Message"))


def ses_events(text: Any) -> list[Feedback]:
    """Events of an SES notification (the SNS `Message`, JSON text)."""
    try:
        note = orjson.loads(text) if isinstance(text, str | bytes) else text
    except orjson.JSONDecodeError:
        raise FeedbackRefused("The SNS Message is not an SES notification.") from None
    if not isinstance(note, dict):
        raise FeedbackRefused("The SNS Message is not an SES notification.")
    kind = str(note.get("notificationType") or note.get("eventType") or "")
    out: list[Feedback] = []
    if kind == "Bounce":
        bounce = note.get("bounce") or {}
        severity = HARD if bounce.get("bounceType") == "Permanent" else SOFT
        label = f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}"
        for r in bounce.get("bouncedRecipients") or []:
            found = _event(r.get("emailAddress"), severity, " ".join(
                str(x) for x in (label, r.get("status"), r.get("diagnosticCode")) if x),
                "ses")
            if found:
                out.append(found)
    elif kind == "Complaint":
        complaint = note.get("complaint") or {}
        for r in complaint.get("complainedRecipients") or []:
            found = _event(r.get("emailAddress"), COMPLAINT,
                           complaint.get("complaintFeedbackType") or "complaint", "ses")
            if found:
                out.append(found)
    return out
