"""The pipelined SMTP client against a scripted pipelining server on loopback: refused
recipients, multi-line replies, and servers that break the session (a malformed reply, a
line without end, a dropped connection), on asyncio's loop and on uvloop (the workers')."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvloop

from conveyor.notify.smtp_pipeline import PipelinedConnection
from tests.support.loopback import tcp_sessions

BODY = b"Subject: x\r\n\r\nhello\r\n.leading dot\r\n"
RUNNERS = {"asyncio": asyncio.run, "uvloop": uvloop.run}


@contextlib.asynccontextmanager
async def scripted_smtp(delivered: list[str]) -> AsyncIterator[int]:
    """A pipelining server whose answers depend on the recipient's local part: `refused`
    (RCPT 550, DATA 554), `late` (RCPT 550, DATA 354 all the same), `multi` (multi-line
    MAIL reply), `garbage` and `digits` (a malformed end-of-data reply), `endless` (a
    reply line that never ends), `drop` (the connection closed at DATA). Others are
    delivered."""
    async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        await reader.readline()
        writer.write(b"250-scripted\r\n250-SIZE 1000000\r\n250 PIPELINING\r\n")
        rcpt, data = "", b""
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                if line.startswith(b"MAIL"):
                    writer.write(b"250-2.1.0 sender\r\n250 2.1.0 ok\r\n" if b"multi" in line
                                 else b"250 2.1.0 ok\r\n")
                elif line.startswith(b"RCPT"):
                    rcpt = line[9:].split(b"@")[0].decode()
                    writer.write(b"550 5.1.1 no such user\r\n"
                                 if rcpt.startswith(("refused", "late")) else b"250 ok\r\n")
                elif line.startswith(b"DATA"):
                    if rcpt.startswith("drop"):
                        return
                    if rcpt.startswith("refused"):
                        writer.write(b"554 5.5.1 no valid recipients\r\n")
                        continue
                    writer.write(b"354 go on\r\n")
                    data = b""
                    while (part := await reader.readline()) != b".\r\n":
                        if not part:
                            return  # the client went away mid-message
                        data += part
                    if rcpt.startswith("garbage"):
                        writer.write(b"hello there\r\n")
                    elif rcpt.startswith("digits"):  # digits to str.isdigit, not to int
                        writer.write("2\u00b20 ok\r\n".encode())
                    elif rcpt.startswith("endless"):
                        writer.write(b"250 " + b"x" * 70_000)
                    elif rcpt.startswith("late"):
                        writer.write(b"250 ignored\r\n")
                    else:
                        assert data == BODY.replace(b"\r\n.", b"\r\n.."), data
                        delivered.append(rcpt)
                        writer.write(b"250 2.0.0 Ok: queued as Q" + rcpt.encode() + b"\r\n")
                elif line.startswith(b"RSET"):
                    writer.write(b"250 reset\r\n")
                else:
                    writer.write(b"221 bye\r\n")
                    return

    async with tcp_sessions(converse) as port:
        yield port


def run(runner: str, scenario: Callable[[int, list[str]], Awaitable[Any]]) -> Any:
    """`scenario(port, delivered)` against the scripted server, on the named loop."""
    async def main() -> Any:
        delivered: list[str] = []
        async with scripted_smtp(delivered) as port:
            return await scenario(port, delivered), delivered

    return RUNNERS[runner](main())


async def _send(port: int, recipients: list[str]) -> tuple[list[Any], bool]:
    conn = PipelinedConnection("127.0.0.1", port, timeout=5)
    await conn.connect()
    assert "PIPELINING" in conn.extensions and "SIZE" in conn.extensions
    results = await conn.send_many([("a@shop.example", f"{r}@example.com", BODY)
                                    for r in recipients])
    connected = conn.connected
    await conn.close()
    return [(r.outcome, r.provider_id or r.detail) for r in results], connected


@pytest.mark.parametrize("runner", RUNNERS)
def test_refused_recipients_fail_alone_and_the_session_goes_on(runner: str) -> None:
    async def scenario(port: int, delivered: list[str]) -> Any:
        return await _send(port, ["one", "refused", "two", "late", "multi", "three"])

    (results, connected), delivered = run(runner, scenario)
    assert [r[0] for r in results] == ["sent", "permanent", "sent", "permanent", "sent",
                                       "sent"]
    assert results[0][1] == "Qone" and results[4][1] == "Qmulti"
    assert results[1][1] == results[3][1] == "550 5.1.1 no such user"
    assert delivered == ["one", "two", "multi", "three"] and connected


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("breaker", ["garbage", "digits", "endless", "drop"])
def test_a_broken_session_fails_what_is_unanswered_as_transient(runner: str,
                                                                breaker: str) -> None:
    async def scenario(port: int, delivered: list[str]) -> Any:
        return await _send(port, ["one", breaker, "two"])

    (results, connected), delivered = run(runner, scenario)
    # The message before is answered and recorded; the breaker and the one after are
    # left for a retry (never counted as sent), and the session is closed.
    assert [r[0] for r in results] == ["sent", "transient", "transient"], results
    assert delivered == ["one"] and not connected
