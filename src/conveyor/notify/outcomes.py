"""How a provider's answer is classed: sent, transient (retry later) or permanent
(dead-letter), and whether the address is gone for good (suppress it).

| signal | class |
|---|---|
| SMTP 2xx | sent |
| SMTP 421, 4xx, a dropped connection, a timeout | transient |
| SMTP 5xx (5.1.1: also suppress the address) | permanent |
| HTTP 2xx | sent |
| HTTP 408, 425, 429, 5xx, timeouts | transient, honouring Retry-After |
| HTTP other 4xx | permanent (push 404/410: the subscription is gone) |
"""

from __future__ import annotations

import email.utils
import time
from typing import NamedTuple

__all__ = ["BODY_EXCERPT", "Result", "http_result", "retry_after_seconds", "smtp_result",
           "throttled"]


class Result(NamedTuple):
    """One notification's outcome: `sent`, `transient` or `permanent`; the reason; the
    provider's id for it; how long the provider asked us to wait; and `gone` when the
    address should be suppressed."""

    outcome: str
    detail: str | None = None
    provider_id: str | None = None
    retry_after: float | None = None
    gone: bool = False

    @classmethod
    def sent(cls, provider_id: str | None = None) -> Result:
        """Accepted by the provider."""
        return cls("sent", None, provider_id)

    @classmethod
    def transient(cls, detail: str, retry_after: float | None = None) -> Result:
        """Try again later."""
        return cls("transient", detail, None, retry_after)

    @classmethod
    def permanent(cls, detail: str, gone: bool = False) -> Result:
        """Never going to work: dead-letter (and suppress when `gone`)."""
        return cls("permanent", detail, None, None, gone)


def smtp_result(code: int, message: str) -> Result:
    """Class an SMTP reply to a transaction."""
    detail = f"{code} {message}".strip()[:1000]
    if 200 <= code < 300:
        return Result.sent(_queue_id(message))
    if 400 <= code < 500 or code < 200:
        return Result.transient(detail)
    return Result.permanent(detail, gone=message.lstrip().startswith("5.1.1"))


def _queue_id(message: str) -> str | None:
    """The queue id in a 250 reply such as `2.0.0 Ok: queued as 4BxYz`."""
    marker = "queued as "
    at = message.find(marker)
    return message[at + len(marker):].split()[0][:200] if at >= 0 else (message[:200] or None)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


BODY_EXCERPT = 200
"""Characters of an error answer's body kept in its detail (the delivery view shows it)."""


def http_result(status: int, reason: str = "", retry_after: str | None = None, *,
                gone_statuses: frozenset[int] = frozenset(), provider_id: str | None = None,
                body: bytes | str | None = None) -> Result:
    """Class an HTTP answer (`gone_statuses`: those meaning the address is gone); an
    error's detail ends with an excerpt of its `body`, whitespace folded."""
    if 200 <= status < 300:
        return Result.sent(provider_id)
    detail = f"HTTP {status} {reason}".strip()
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if text and text.strip():
        detail += ": " + " ".join(text[:BODY_EXCERPT * 2].split())[:BODY_EXCERPT]
    detail = detail[:1000]
    if status in (408, 425, 429) or status >= 500:
        return Result.transient(detail, retry_after_seconds(retry_after))
    return Result.permanent(detail, gone=status in gone_statuses)


def throttled(result: Result) -> bool:
    """Whether the provider asked the whole channel to slow down: a transient 429 or 503
    with a Retry-After (FCM's QUOTA_EXCEEDED and UNAVAILABLE, APNs' TooManyRequests), which
    then also penalizes the channel's rate limit."""
    detail = result.detail or ""
    return result.outcome == "transient" and bool(result.retry_after) and (
        "429" in detail or "503" in detail)
