"""Provider feedback into suppression: bounces and complaints reported by email providers
after the fact, in their own formats, verified, then applied to the suppression list.

Formats (each parser returns `Feedback` events or raises `FeedbackRefused`, a 4xx):

- Amazon SES through SNS: `conveyor.notify.sns` (the SNS signature is verified first).
- SendGrid's event webhook (`sendgrid`): a JSON array, signed with ECDSA P-256 over the
  timestamp and the raw body (`X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp`),
  checked against the verification key from SendGrid's settings.
- Postmark's bounce and spam-complaint webhooks (`postmark`): Postmark signs nothing, so
  the webhook URL carries HTTP basic auth with a secret of ours, checked here.
- Delivery status notifications (RFC 3464, `dsn`) and complaint feedback reports (RFC 5965)
  mailed to an inbound SMTP address (`conveyor.notify.inbound`).

Applying (`apply_feedback`): a hard bounce or a complaint suppresses the address at once;
soft bounces are counted per address in a GCRA bucket in the database (the rate-limit
store, shared by every node): the `soft_limit`-th within about `soft_window` seconds
suppresses it, and older ones are forgiven as the bucket refills.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from typing import TYPE_CHECKING, Any

import orjson

from conveyor.digits import integer
from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["Feedback", "FeedbackRefused", "FeedbackSettings", "apply_feedback", "dsn",
           "original_message_id", "postmark", "sendgrid"]

HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"
MAX_BODY = 8 * 1_048_576


class FeedbackRefused(ConveyorError):
    """A feedback payload that is unsigned, badly signed or malformed (answered 4xx, with
    nothing applied)."""

    code = "feedback_refused"
    status = 400

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Feedback:
    """One address's bounce or complaint: `kind` is hard, soft or complaint."""

    address: str
    kind: str
    reason: str
    source: str


@dataclass(frozen=True)
class FeedbackSettings:
    """Which providers' feedback a server accepts and how it is applied: `sendgrid_key`
    (SendGrid's verification key, base64), `postmark_secret` (the basic-auth password in
    Postmark's webhook URL), `sns_topics` (SES feedback topics' ARNs; empty: SES off
    unless `sns_any_topic`), `sns_cert_hosts` (a regex of hosts SNS certificates may come
    from), and where events go: the `channel` suppressed, `soft_limit` in `soft_window`."""

    channel: str = "email"
    soft_limit: int = 3
    soft_window: float = 7 * 86_400.0
    sendgrid_key: str | None = None
    postmark_secret: str | None = None
    sns_topics: tuple[str, ...] = ()
    sns_any_topic: bool = False
    sns_cert_hosts: str | None = None
    sns_ca_file: str | None = None
    """Extra certificates to trust when fetching SNS certificates (a proxy's)."""


def _event(address: Any, kind: str, reason: Any, source: str) -> Feedback | None:
    text = str(address or "").strip()
    if not text or "@" not in text:
        return None
    return Feedback(text, kind, str(reason or kind)[:500], source)


# SendGrid -------------------------------------------------------------------------------
def sendgrid(headers: Mapping[str, str], body: bytes, public_key: str,
             max_age: float = 600.0, now: float | None = None) -> list[Feedback]:
    """Events of a SendGrid event-webhook POST whose signature `public_key` (the base64
    verification key) verifies. `bounce` (type bounce) and `dropped` (an address SendGrid
    already refuses) are hard; `bounce` of type `blocked` is soft; `spamreport` is a
    complaint; other events (delivered, deferred, open, ...) are ignored."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    if len(body) > MAX_BODY:
        raise FeedbackRefused("The SendGrid batch is too large.", 413)
    lower = {k.lower(): v for k, v in headers.items()}
    signature = lower.get("x-twilio-email-event-webhook-signature")
    stamp = lower.get("x-twilio-email-event-webhook-timestamp")
    if not signature or not stamp:
        raise FeedbackRefused("The SendGrid signature headers are missing.", 401)
    try:
        key = load_der_public_key(base64.b64decode(public_key))
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(base64.b64decode(signature), stamp.encode() + body,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        raise FeedbackRefused("The SendGrid signature does not verify.", 401) from None
    at = integer(stamp)
    if at is None or abs((time.time() if now is None else now) - at) > max_age:
        raise FeedbackRefused("The SendGrid timestamp is too old (a replay?).", 401)
    events = _json(body)
    if not isinstance(events, list):
        raise FeedbackRefused("A SendGrid event webhook posts a JSON array.")
    out: list[Feedback] = []
    for e in events:
        if not isinstance(e, dict):
            continue
        kind = {"bounce": SOFT if e.get("type") == "blocked" else HARD, "dropped": HARD,
                "spamreport": COMPLAINT}.get(str(e.get("event")))
        found = kind and _event(e.get("email"), kind, " ".join(
            str(e[k]) for k in ("event", "status", "reason") if e.get(k)), "sendgrid")
        if found:
            out.append(found)
    return out


# Postmark -------------------------------------------------------------------------------
_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Unsubscribe"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "MailFrontier", "Blocked",
                  "SMTPApiError", "InboundError", "ChallengeVerification"}
_POSTMARK_COMPLAINT = {"SpamComplaint", "SpamNotification"}


def postmark(headers: Mapping[str, str], body: bytes, secret: str) -> list[Feedback]:
    """The event of a Postmark bounce or spam-complaint webhook POST, its basic-auth
    password checked against `secret`."""
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization", "")
    password = ""
    if auth.lower().startswith("basic "):
        try:
            password = base64.b64decode(auth[6:]).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            password = ""
    if not password or not hmac.compare_digest(password.encode(), secret.encode()):
        raise FeedbackRefused("The Postmark webhook's credentials are wrong or missing.", 401)
    record = _json(body)
    if not isinstance(record, dict):
        raise FeedbackRefused("A Postmark webhook posts a JSON object.")
    kind_name = str(record.get("Type") or record.get("RecordType") or "")
    kind = (HARD if kind_name in _POSTMARK_HARD else SOFT if kind_name in _POSTMARK_SOFT
            else COMPLAINT if kind_name in _POSTMARK_COMPLAINT else None)
    if kind is None:
        return []
    found = _event(record.get("Email"), kind, f"{kind_name}: {record.get('Description') or ''}"
                   .strip(": "), "postmark")
    return [found] if found else []


# RFC 3464 delivery status notifications, RFC 5965 complaints -------------------------------
def dsn(raw: bytes) -> list[Feedback]:
    """Events of a mailed report: a DSN (`multipart/report; report-type=delivery-status`:
    `Action: failed` with a 5.x.x status is hard; `delayed` or 4.x.x is soft) or an ARF
    complaint (`report-type=feedback-report`). Anything else yields nothing."""
    message = message_from_bytes(raw, policy=policy.compat32)
    if message.get_content_type() != "multipart/report":
        return []
    report_type = str(message.get_param("report-type") or "").lower()
    parts = message.get_payload()
    if not isinstance(parts, list):
        return []
    out: list[Feedback] = []
    for part in parts:
        if not isinstance(part, Message):
            continue
        kind = part.get_content_type()
        if report_type == "delivery-status" and kind == "message/delivery-status":
            out += _delivery_status(part)
        elif report_type == "feedback-report" and kind == "message/feedback-report":
            out += _feedback_report(part)
    return out


def original_message_id(raw: bytes) -> str | None:
    """The Message-ID of the message a report returns (its `message/rfc822` or
    `text/rfc822-headers` part), without the angle brackets; None when absent."""
    message = message_from_bytes(raw, policy=policy.compat32)
    if message.get_content_type() != "multipart/report":
        return None
    for part in message.walk():
        kind = part.get_content_type()
        inner: Message | None = None
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload and isinstance(
                payload[0], Message) else None
        elif kind == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            inner = message_from_bytes(text if isinstance(text, bytes) else b"",
                                       policy=policy.compat32)
        if inner is not None and inner.get("Message-ID"):
            return str(inner["Message-ID"]).strip().strip("<>").strip() or None
    return None


def _delivery_status(part: Message) -> list[Feedback]:
    groups = part.get_payload()
    if not isinstance(groups, list):
        return []
    out: list[Feedback] = []
    for fields in groups[1:]:  # the first group is per message, the rest per recipient
        if not isinstance(fields, Message):
            continue
        recipient = str(fields.get("Final-Recipient") or fields.get("Original-Recipient")
                        or "")
        address = recipient.partition(";")[2].strip() or recipient.strip()
        action = str(fields.get("Action") or "").strip().lower()
        status = str(fields.get("Status") or "").strip()
        diagnostic = " ".join(str(fields.get("Diagnostic-Code") or "").split())
        if action == "failed" and status.startswith("5"):
            kind = HARD
        elif action in ("failed", "delayed") and status.startswith("4"):
            kind = SOFT
        else:
            continue  # delivered, relayed, expanded: no bounce
        found = _event(address, kind, f"{status} {diagnostic}".strip(), "dsn")
        if found:
            out.append(found)
    return out


def _feedback_report(part: Message) -> list[Feedback]:
    payload = part.get_payload()
    fields = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(fields, Message):
        return []
    address = str(fields.get("Original-Rcpt-To") or "").strip()
    found = _event(address, COMPLAINT, f"{fields.get('Feedback-Type') or 'abuse'} report",
                   "arf")
    return [found] if found else []


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FeedbackRefused("The body is not JSON.") from None


# applying -------------------------------------------------------------------------------
async def apply_feedback(broker: Broker, events: Sequence[Feedback], *,
                         channel: str = "email", soft_limit: int = 3,
                         soft_window: float = 7 * 86_400.0) -> dict[str, int]:
    """Suppress hard bounces and complaints; count soft bounces and suppress at the
    `soft_limit`-th within about `soft_window` seconds. Returns counts by outcome."""
    counts = {"hard": 0, "complaint": 0, "soft": 0, "suppressed": 0}
    rows: list[tuple[str, str, str]] = []
    for event in events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
        reason = f"{event.source} {event.kind}: {event.reason}"[:500]
        if event.kind != SOFT:
            rows.append((channel, event.address, reason))
            continue
        if soft_limit <= 1:
            rows.append((channel, event.address, reason))
            continue
        allowed = soft_limit - 1  # bounces that pass; the next one within the window tells
        grant = await broker.limits.take(f"soft-bounce:{channel}:{event.address}"[:200],
                                         allowed, soft_window, want=1, burst=allowed)
        if not grant.granted:
            rows.append((channel, event.address,
                         f"{soft_limit} soft bounces; last {reason}"[:500]))
    for start in range(0, len(rows), 1000):
        await broker.ledger.suppress(rows[start:start + 1000])
    counts["suppressed"] = len({(c, a) for c, a, _ in rows})
    return counts
