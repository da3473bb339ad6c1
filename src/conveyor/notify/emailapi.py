"""Email through an HTTP email API, batch-shaped like SendGrid's or Postmark's batch calls.

One POST of up to `batch_size` messages to `{base_url}{path}` with a bearer token:
`[{"message_id", "from", "to", "subject", "text", "html", "headers"}, ...]`. The answer is
200 with one `{"status": "ok"|"error", "code", "message", "id"}` per message (Postmark
answers that way; a bare 2xx counts as all sent), or 429/5xx (the whole batch is retried,
honouring Retry-After), or another 4xx (the whole batch fails). Per-item codes are classed
as HTTP statuses. The Message-ID / delivery id is sent so a resend is recognisable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
import orjson

from conveyor.notify.channel import Channel
from conveyor.notify.models import Item
from conveyor.notify.outcomes import Result, http_result

__all__ = ["HttpEmailChannel"]


class HttpEmailChannel(Channel):
    """Email via a batch HTTP API."""

    kind: ClassVar[str] = "email"
    batch_size = 500
    payload_limit = 10 * 1_048_576
    resend_unknown = True

    def __init__(self, base_url: str, api_key: str, *, path: str = "/email/batch",
                 sender: str = "conveyor@localhost", batch_size: int = 500,
                 timeout: float = 30.0, rate_limit: str | None = None) -> None:
        super().__init__()
        self.base_url, self.path = base_url.rstrip("/"), path
        self.api_key, self.sender = api_key, sender
        self.batch_size = batch_size
        self.timeout = timeout
        self.rate_limit = rate_limit
        self._client: httpx.AsyncClient | None = None

    def render(self, item: Item) -> dict[str, Any]:
        """One message of the batch."""
        x = item.extra
        parts = self.render_template(item, x.get("subject", ""), x.get("text", ""),
                                     x.get("html"))
        message: dict[str, Any] = {"message_id": item.id, "from": x.get("sender") or
                                   self.sender, "to": item.to, "subject": parts.subject,
                                   "text": parts.text}
        if parts.html is not None:
            message["html"] = parts.html
        if x.get("headers"):
            message["headers"] = x["headers"]
        return message

    def where(self) -> str:
        """The email API, as the log names it."""
        return f"the email API {self.base_url}"

    async def open(self) -> None:
        """The HTTP client."""
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout,
                                             headers={"Authorization": f"Bearer {self.api_key}"})

    async def send_many(self, items: Sequence[Item], payloads: Sequence[Any]) -> list[Result]:
        """One POST for the batch."""
        await self.open()
        assert self._client is not None
        asked = self.reach.now()
        try:
            resp = await self._client.post(self.path, content=orjson.dumps(list(payloads)),
                                           headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            self.unreachable(exc, "%d email%s not sent", len(items),
                             "" if len(items) == 1 else "s")
            return [Result.transient(f"email API unreachable: {exc!r}"[:300])] * len(items)
        self.reached(asked)
        whole = http_result(resp.status_code, resp.reason_phrase,
                            resp.headers.get("Retry-After"))
        if whole.outcome != "sent":
            return [whole] * len(items)
        try:
            answers = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            answers = None
        if not isinstance(answers, list) or len(answers) != len(items):
            return [Result.sent()] * len(items)
        results = []
        for answer in answers:
            if answer.get("status") == "ok":
                results.append(Result.sent(answer.get("id")))
            else:
                code = int(answer.get("code") or 400)
                results.append(http_result(code, str(answer.get("message", ""))[:300]))
        return results

    async def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
