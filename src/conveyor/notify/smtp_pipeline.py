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
import ssl
from collections.abc import Sequence

from conveyor.notify.outcomes import Result, smtp_result

__all__ = ["PipelinedConnection", "SmtpError"]


class SmtpError(Exception):
    """The connection broke or the server refused the session (not one message)."""


def _stuff(data: bytes) -> bytes:
    """Dot-stuffing (RFC 5321 4.5.2); `data` ends with CRLF."""
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._deadline: asyncio.Timeout | None = None
        self._deadline_loop: asyncio.AbstractEventLoop | None = None

    @property
    def connected(self) -> bool:
        """Whether the session is open."""
        return self._writer is not None and not self._writer.is_closing()

    def _extend(self) -> None:
        """Move the batch's deadline to `timeout` from now, once a command group written
        (moved at each reply, the timer's re-arming cost the client about a quarter of its
        CPU a message against smtp-sink)."""
        if self._deadline is not None and self._deadline_loop is not None:
            self._deadline.reschedule(self._deadline_loop.time() + self.timeout)

    async def _reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply."""
        return (await self._replies(1))[0]

    async def _replies(self, count: int) -> list[tuple[int, str]]:
        """The next `count` (possibly multi-line) replies, read in one coroutine (a
        group's MAIL, RCPT and DATA replies come back together). Callers hold an
        `asyncio.timeout` (one per batch, moved on by `_extend`: a `wait_for` per line
        costs more than the rest)."""
        reader = self._reader
        assert reader is not None
        replies: list[tuple[int, str]] = []
        lines: list[str] = []
        while len(replies) < count:
            line = await reader.readuntil(b"\n")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if len(text) < 3 or not text[:3].isdigit():
                raise SmtpError(f"malformed reply {text[:100]!r}")
            lines.append(text[4:])
            if text[3:4] != "-":
                replies.append((int(text[:3]), "\n".join(lines)))
                lines = []
        return replies

    async def _command(self, line: str) -> tuple[int, str]:
        async with asyncio.timeout(self.timeout):
            return await self._command_in_time(line)

    async def _command_in_time(self, line: str) -> tuple[int, str]:
        assert self._writer is not None
        self._writer.write(line.encode() + b"\r\n")
        self._extend()
        return await self._reply()

    async def connect(self) -> None:
        """Open the session: greeting, EHLO, STARTTLS and AUTH when configured."""
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self._tls), self.timeout)
            async with asyncio.timeout(self.timeout):
                code, text = await self._reply()
            if code != 220:
                raise SmtpError(f"greeting {code} {text}")
            await self._ehlo()
            if self._starttls is not None:
                code, text = await self._command("STARTTLS")
                if code != 220:
                    raise SmtpError(f"STARTTLS {code} {text}")
                writer = self._writer
                assert writer is not None
                await writer.start_tls(self._starttls)
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
        makes the unfinished ones transient (and closes the session)."""
        assert self._writer is not None
        results: list[Result | None] = [None] * len(messages)
        try:
            async with asyncio.timeout(self.timeout) as self._deadline:
                self._deadline_loop = asyncio.get_running_loop()
                await self._pipeline(messages, results)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, SmtpError) as exc:
            await self.close()
            broken = Result.transient(f"connection lost: {exc!r}"[:300])
            return [r if r is not None else broken for r in results]
        finally:
            self._deadline = self._deadline_loop = None
        return [r if r is not None else Result.transient("no reply") for r in results]

    async def _pipeline(self, messages: Sequence[tuple[str, str, bytes]],
                        results: list[Result | None]) -> None:
        assert self._writer is not None
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
            self._writer.write(out)
            self._extend()
            if pending is not None:  # recorded before the next replies can fail
                results[pending] = smtp_result(*await self._reply())
                pending = None
            if last:
                break
            replies = await self._replies(3)
            bad = next((r for r in replies[:2] if r[0] >= 300), None)
            if replies[2][0] == 354 and bad is None:
                pending = index
                continue
            if replies[2][0] == 354:  # DATA accepted after a refused RCPT: end it empty
                self._writer.write(b".\r\n")
                self._extend()
                await self._reply()
            results[index] = smtp_result(*(bad or replies[2]))
            await self._command_in_time("RSET")

    async def close(self) -> None:
        """QUIT (best effort) and close."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            if not writer.is_closing():
                writer.write(b"QUIT\r\n")
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (TimeoutError, OSError, ssl.SSLError):
            pass
