"""An RFC 2920 pipelined SMTP client: one round trip per message instead of four.

Each group written is `<previous message's data>.` + `MAIL FROM` + `RCPT TO` + `DATA`
(DATA last, as RFC 2920 requires); the replies to the previous end-of-data and to the three
commands come back together. Used when the server advertises PIPELINING (Postfix does;
aiosmtpd does not). STARTTLS, implicit TLS and AUTH PLAIN are supported. Measured against
Postfix's smtp-sink on this machine: see NOTIFY-NOTES.md and `benchmarks/notify.py`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections import deque
from collections.abc import Sequence
from typing import cast

from conveyor.notify.outcomes import Result, smtp_result

__all__ = ["PipelinedConnection", "SmtpError"]


class SmtpError(Exception):
    """The connection broke or the server refused the session (not one message)."""


def _stuff(data: bytes) -> bytes:
    """Dot-stuffing (RFC 5321 4.5.2); `data` ends with CRLF."""
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


MAX_LINE = 65_536
"""The longest reply line read (a server sending more without a line break is broken)."""


class _Replies(asyncio.Protocol):
    """The session's reading side: replies parsed as they arrive, taken by count.

    Against asyncio's streams (a `readuntil` coroutine per reply line, a timer moved per
    command group) the client spends ~0.7x the CPU a message (README, Notifications)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop, self.timeout = loop, timeout
        self.transport: asyncio.Transport | None = None
        self.replies: deque[tuple[int, str]] = deque()
        self.failure: BaseException | None = None
        self.deadline = 0.0  # moved by `extend`; checked by the watchdog when it fires
        self._buffer = b""
        self._lines: list[str] = []
        self._want = 0
        self._waiter: asyncio.Future[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they are ones.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            if end - start > MAX_LINE:
                self.fail(SmtpError(f"a reply line longer than {MAX_LINE} bytes"))
                return
            text = buffer[start:end].decode("utf-8", "replace").rstrip("\r")
            start = end + 1
            if len(text) < 3 or not (text[:3].isascii() and text[:3].isdigit()):
                self.fail(SmtpError(f"malformed reply {text[:100]!r}"))
                return
            self._lines.append(text[4:])
            if text[3:4] != "-":
                self.replies.append((int(text[:3]), "\n".join(self._lines)))
                self._lines = []
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_LINE:
            self.fail(SmtpError(f"a reply line longer than {MAX_LINE} bytes"))
        elif (self._waiter is not None and len(self.replies) >= self._want
              and not self._waiter.done()):
            self._waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or asyncio.IncompleteReadError(self._buffer, None))
        if not self.closed.done():
            self.closed.set_result(None)

    def fail(self, exc: BaseException) -> None:
        """Fail the session: the reply awaited now and every later one raise `exc`."""
        if self.failure is None:
            self.failure = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(self.failure)
        if self.transport is not None:
            self.transport.abort()

    async def take(self, count: int) -> list[tuple[int, str]]:
        """The next `count` (possibly multi-line) replies."""
        while len(self.replies) < count:
            if self.failure is not None:
                raise self.failure
            self._want = count
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return [self.replies.popleft() for _ in range(count)]

    def watch(self) -> None:
        """From now until `unwatch`, fail with TimeoutError once `deadline` passes."""
        self.extend()
        self._watchdog = self.loop.call_at(self.deadline, self._check)

    def extend(self) -> None:
        """The deadline to `timeout` from now (a command group was written)."""
        self.deadline = self.loop.time() + self.timeout

    def unwatch(self) -> None:
        """Stop the watchdog."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _check(self) -> None:
        if self.loop.time() >= self.deadline:
            self._watchdog = None
            self.fail(TimeoutError(f"no reply within {self.timeout} s"))
        else:  # moved on since armed: look again then (one timer a batch, not a group)
            self._watchdog = self.loop.call_at(self.deadline, self._check)


class PipelinedConnection:
    """One SMTP session that sends messages with pipelined command groups."""

    def __init__(self, host: str, port: int, *, helo: str = "localhost",
                 tls: ssl.SSLContext | None = None, starttls: ssl.SSLContext | None = None,
                 username: str | None = None, password: str | None = None,
                 timeout: float = 30.0) -> None:
        self.host, self.port, self.helo = host, port, helo
        self._tls, self._starttls = tls, starttls
        self._username, self._password = username, password
        self.timeout = timeout
        self.extensions: set[str] = set()
        self._session: _Replies | None = None

    @property
    def connected(self) -> bool:
        """Whether the session is open."""
        session = self._session
        return (session is not None and session.failure is None
                and session.transport is not None and not session.transport.is_closing())

    async def _reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply."""
        assert self._session is not None
        return (await self._session.take(1))[0]

    def _write(self, data: bytes) -> None:
        session = self._session
        assert session is not None and session.transport is not None
        session.transport.write(data)
        session.extend()

    async def _command(self, line: str) -> tuple[int, str]:
        async with asyncio.timeout(self.timeout):
            self._write(line.encode() + b"\r\n")
            return await self._reply()

    async def connect(self) -> None:
        """Open the session: greeting, EHLO, STARTTLS and AUTH when configured."""
        loop = asyncio.get_running_loop()
        try:
            transport, self._session = await asyncio.wait_for(loop.create_connection(
                lambda: _Replies(loop, self.timeout), self.host, self.port, ssl=self._tls),
                self.timeout)
            async with asyncio.timeout(self.timeout):
                code, text = await self._reply()
            if code != 220:
                raise SmtpError(f"greeting {code} {text}")
            await self._ehlo()
            if self._starttls is not None:
                code, text = await self._command("STARTTLS")
                if code != 220:
                    raise SmtpError(f"STARTTLS {code} {text}")
                session = self._session
                assert session is not None
                secure = await asyncio.wait_for(loop.start_tls(
                    transport, session, self._starttls, server_hostname=self.host),
                    self.timeout)
                if secure is None:
                    raise SmtpError("STARTTLS: the connection closed during the handshake")
                session.transport = secure
                await self._ehlo()
            if self._username is not None:
                token = base64.b64encode(
                    f"\0{self._username}\0{self._password or ''}".encode()).decode()
                code, text = await self._command(f"AUTH PLAIN {token}")
                if code != 235:
                    raise SmtpError(f"AUTH {code} {text}")
        except SmtpError:
            await self.close()  # a refused greeting, EHLO, STARTTLS or AUTH
            raise
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            await self.close()
            raise SmtpError(f"cannot connect to {self.host}:{self.port}: {exc!r}") from exc

    async def _ehlo(self) -> None:
        code, text = await self._command(f"EHLO {self.helo}")
        if code != 250:
            raise SmtpError(f"EHLO {code} {text}")
        self.extensions = {line.split()[0].upper() for line in text.split("\n")[1:] if line}

    async def send_many(self, messages: Sequence[tuple[str, str, bytes]]) -> list[Result]:
        """Send (sender, recipient, data) messages; one result each. A broken connection
        makes the unfinished ones transient (and closes the session). Each command group
        gets `timeout` seconds for its replies."""
        session = self._session
        assert session is not None
        results: list[Result | None] = [None] * len(messages)
        session.watch()
        try:
            await self._pipeline(messages, results)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, SmtpError) as exc:
            await self.close()
            broken = Result.transient(f"connection lost: {exc!r}"[:300])
            return [r if r is not None else broken for r in results]
        finally:
            session.unwatch()
        return [r if r is not None else Result.transient("no reply") for r in results]

    async def _pipeline(self, messages: Sequence[tuple[str, str, bytes]],
                        results: list[Result | None]) -> None:
        session = self._session
        assert session is not None
        pending: int | None = None
        for index, (sender, rcpt, _) in enumerate([*messages, ("", "", b"")]):
            last = index == len(messages)
            out = b""
            if pending is not None:
                out += _stuff(messages[pending][2]) + b".\r\n"
            if not last:
                out += f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode()
            if not out:
                break
            self._write(out)
            if pending is not None:  # recorded before the next replies can fail
                results[pending] = smtp_result(*await self._reply())
                pending = None
            if last:
                break
            replies = await session.take(3)  # MAIL's, RCPT's and DATA's: they come back together
            bad = next((r for r in replies[:2] if r[0] >= 300), None)
            if replies[2][0] == 354 and bad is None:
                pending = index
                continue
            if replies[2][0] == 354:  # DATA accepted after a refused RCPT: end it empty
                self._write(b".\r\n")
                await self._reply()
            results[index] = smtp_result(*(bad or replies[2]))
            self._write(b"RSET\r\n")
            await self._reply()

    async def close(self) -> None:
        """QUIT (best effort) and close."""
        session, self._session = self._session, None
        if session is None or session.transport is None:
            return
        session.unwatch()
        if not session.transport.is_closing():
            session.transport.write(b"QUIT\r\n")
            session.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(session.closed), 1.0)
