"""The SMTP channel: cheap rendering, a pool of connections, pipelining when offered.

```python
SmtpChannel(host="smtp.example.com", port=587, starttls=True, username=..., password=...,
            sender="Shop <news@shop.example>", pool_size=20, rate_limit="300/m")
```
`pipelining="auto"` uses our RFC 2920 client (`smtp_pipeline`) when the server advertises
PIPELINING and aiosmtplib otherwise; `True`/`False` force one. Messages of a batch are
spread over the pool's connections, which send concurrently.

The crash window: a worker that dies after the server accepted a message and before the
ledger says `sent` leaves the row `sending` (only the chunk in flight,
`DeliveryOptions.in_flight`); the redelivered message is sent again with the same
Message-ID (`resend_unknown = True`), which receivers and most MTAs deduplicate.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any, ClassVar

from conveyor.notify.channel import Channel, PayloadTooLarge
from conveyor.notify.models import Item
from conveyor.notify.outcomes import Result, smtp_result
from conveyor.notify.smtp_pipeline import PipelinedConnection, SmtpError
from conveyor.notify.smtp_render import DkimKey, render_email

__all__ = ["SmtpChannel"]


class _PlainConnection:
    """One aiosmtplib session (no pipelining)."""

    def __init__(self, channel: SmtpChannel) -> None:
        import aiosmtplib

        self._smtp = aiosmtplib.SMTP(
            hostname=channel.host, port=channel.port, use_tls=channel.tls,
            start_tls=channel.starttls, timeout=channel.timeout,
            tls_context=channel.ssl_context, username=channel.username,
            password=channel.password, validate_certs=channel.ssl_context is not None)

    @property
    def connected(self) -> bool:
        return bool(self._smtp.is_connected)

    async def connect(self) -> None:
        import aiosmtplib

        try:
            await self._smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SmtpError(f"cannot connect: {exc!r}") from exc

    async def send_many(self, messages: Sequence[tuple[str, str, bytes]]) -> list[Result]:
        import aiosmtplib

        results: list[Result] = []
        for sender, rcpt, data in messages:
            try:
                _errors, reply = await self._smtp.sendmail(sender, [rcpt], data)
                results.append(smtp_result(250, reply))
            except aiosmtplib.SMTPRecipientsRefused as exc:
                refused = exc.recipients[0]
                results.append(smtp_result(refused.code, refused.message))
                await self._reset()
            except aiosmtplib.SMTPResponseException as exc:
                results.append(smtp_result(exc.code, exc.message))
                await self._reset()
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                results.append(Result.transient(f"connection lost: {exc!r}"[:300]))
                await self.close()
                break
        broken = Result.transient("connection lost")
        return results + [broken] * (len(messages) - len(results))

    async def _reset(self) -> None:
        import aiosmtplib

        try:
            await self._smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self.close()

    async def close(self) -> None:
        import aiosmtplib

        try:
            if self._smtp.is_connected:
                await self._smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            self._smtp.close()


Connection = PipelinedConnection | _PlainConnection


class SmtpChannel(Channel):
    """Email over SMTP (see the module docstring)."""

    kind: ClassVar[str] = "email"
    batch_size = 200
    payload_limit = 10 * 1_048_576
    resend_unknown = True

    def __init__(self, host: str = "localhost", port: int = 25, *,
                 sender: str = "conveyor@localhost", pool_size: int = 10,
                 tls: bool = False, starttls: bool = False,
                 ssl_context: ssl.SSLContext | None = None,
                 username: str | None = None, password: str | None = None,
                 pipelining: bool | str = "auto", timeout: float = 30.0,
                 message_id_domain: str | None = None, unsubscribe_url: str | None = None,
                 dkim: DkimKey | None = None, rate_limit: str | None = None,
                 payload_limit: int | None = None) -> None:
        super().__init__()
        self.host, self.port, self.sender = host, port, sender
        self.pool_size = pool_size
        self.tls, self.starttls = tls, starttls
        self.ssl_context = ssl_context
        self.username, self.password = username, password
        self.pipelining = pipelining
        self.timeout = timeout
        self.domain = message_id_domain or sender.rsplit("@", 1)[-1].rstrip(">") or "localhost"
        self.unsubscribe_url = unsubscribe_url
        self.dkim = dkim
        self.rate_limit = rate_limit
        if payload_limit is not None:
            self.payload_limit = payload_limit
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max(1, pool_size))
        self._made = 0
        self.pipelined: bool | None = None
        """Whether the pipelined client is in use (known after the first connection)."""

    # rendering ----------------------------------------------------------------------
    def render(self, item: Item) -> tuple[str, str, bytes]:
        """(envelope sender, recipient, message bytes)."""
        x = item.extra
        parts = self.render_template(item, x.get("subject", ""), x.get("text", ""),
                                     x.get("html"))
        unsubscribe = None
        if x.get("bulk"):
            unsubscribe = x.get("unsubscribe_url") or self.unsubscribe_url
            if unsubscribe:
                unsubscribe = unsubscribe.replace("{id}", item.id)
        header_from = x.get("sender") or self.sender
        data = render_email(item.id, header_from, item.to, parts, domain=self.domain,
                            unsubscribe_url=unsubscribe, headers=x.get("headers"),
                            dkim=self.dkim)
        if len(data) > self.payload_limit:
            raise PayloadTooLarge(f"the message is {len(data):,} bytes, over the "
                                  f"{self.payload_limit:,}-byte limit")
        envelope_from = header_from.rsplit("<", 1)[-1].rstrip(">").strip()
        return envelope_from, item.to, data

    # transport ----------------------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def where(self) -> str:
        """The SMTP server, as the log names it."""
        return f"the SMTP server {self.host}:{self.port}"

    async def _new(self) -> Connection:
        conn: Connection
        mode = self.pipelining  # read once: another lane may learn the server meanwhile
        asked = self.reach.now()
        if mode is False:
            self.pipelined = False
            conn = _PlainConnection(self)
            await conn.connect()
            self.reached(asked)  # the server answered the greeting (and EHLO)
            return conn
        conn = PipelinedConnection(
            self.host, self.port, tls=self._context() if self.tls else None,
            starttls=self._context() if self.starttls else None, username=self.username,
            password=self.password, timeout=self.timeout)
        await conn.connect()
        self.reached(asked)
        # This connection's own EHLO decides: a lane that began while another was learning
        # that the server does not pipeline used to find `pipelining` already False after
        # its connect, skip this check and pipeline to a server that never offered it.
        if mode == "auto" and "PIPELINING" not in conn.extensions:
            await conn.close()
            self.pipelining = False
            return await self._new()
        self.pipelined = True
        return conn

    async def _take(self) -> Connection:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn.connected:
                return conn
            self._made -= 1
        self._made += 1
        try:
            return await self._new()
        except BaseException:
            self._made -= 1
            raise

    @property
    def connections(self) -> int:
        """Connections open now (in use or idle); never more than `pool_size`."""
        return self._made

    async def _send_on_one(self, messages: list[tuple[str, str, bytes]]) -> list[Result]:
        # A slot per connection in use: with every slot taken, callers wait for one to
        # come back instead of opening more connections than `pool_size`.
        async with self._slots:
            asked = self.reach.now()
            try:
                conn = await self._take()
            except SmtpError as exc:
                self.unreachable(exc, "%d email%s not sent", len(messages),
                                 "" if len(messages) == 1 else "s")
                return [Result.transient(str(exc)[:300])] * len(messages)
            try:
                results = await conn.send_many(messages)
                if any(r.outcome == "sent" for r in results):
                    self.reached(asked)
                return results
            finally:
                if conn.connected:
                    self._idle.put_nowait(conn)
                else:
                    self._made -= 1

    async def send_many(self, items: Sequence[Item], payloads: Sequence[Any]) -> list[Result]:
        """Spread the batch over up to `pool_size` connections."""
        if self.pipelined is None and payloads:  # learn the server's kind on one first
            first = await self._send_on_one([payloads[0]])
            rest = await self.send_many(items[1:], payloads[1:]) if len(payloads) > 1 else []
            return first + rest
        lanes = max(1, min(self.pool_size, len(payloads)))
        chunks = [list(payloads[i::lanes]) for i in range(lanes)]
        done = await asyncio.gather(*(self._send_on_one(c) for c in chunks))
        results: list[Result] = [Result.transient("unsent")] * len(payloads)
        for lane, lane_results in enumerate(done):
            results[lane::lanes] = lane_results
        return results

    async def close(self) -> None:
        """Close every idle connection."""
        while not self._idle.empty():
            await self._idle.get_nowait().close()
        self._made = 0
