"""The providers not covered elsewhere, each against a real peer on loopback: DKIM-signed
mail verified with dkimpy, the batch HTTP email API, Apprise's json:// into an HTTP sink,
and the pipelined SMTP client's STARTTLS and AUTH against aiosmtpd."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dkim  # type: ignore[import-untyped]
import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conveyor.demo.loopback import SmtpSink
from conveyor.notify import (
    Apprise,
    AppriseChannel,
    DkimKey,
    Email,
    HttpEmailChannel,
    Item,
    Notifier,
    SmtpChannel,
)
from conveyor.notify.smtp_pipeline import PipelinedConnection, SmtpError
from conveyor.notify.smtp_render import render_email
from conveyor.notify.templates import Rendered
from tests.notify.helpers import deliver_until, free_port
from tests.support.loopback import tcp_sessions
from tests.support.tls import self_signed


def test_dkim_signature_verifies() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.shop.example."
        return record

    message = render_email("abc123", "Shop <news@shop.example>", "a@example.com",
                           Rendered("Hello", "Hi there\n.dot line", None),
                           domain="shop.example", unsubscribe_url="https://shop.example/u",
                           dkim=DkimKey("s1", "shop.example", pem))
    assert message.startswith(b"DKIM-Signature: ")
    assert dkim.verify(message, dnsfunc=dns)
    assert not dkim.verify(message.replace(b"Hi there", b"Hi thERE"), dnsfunc=dns)
    signed = message.split(b"\r\n\r\n", 1)[0].split(b"h=", 1)[1].split(b";", 1)[0]
    assert b"list-unsubscribe" in signed.lower()


@contextlib.asynccontextmanager
async def http_peer(app: web.Application) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_http_email_api_batches_per_item_results_and_retry_after(broker: Any) -> None:
    calls: list[list[dict[str, Any]]] = []
    answers = [web.Response(status=429, headers={"Retry-After": "1"})]

    async def batch(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer k3y"
        body = orjson.loads(await request.read())
        calls.append(body)
        if answers:
            return answers.pop(0)
        return web.json_response([
            {"status": "error", "code": 422, "message": "bad address"}
            if m["to"] == "bad@example.com" else {"status": "ok", "id": f"pm-{m['to']}"}
            for m in body])

    app = web.Application()
    app.router.add_post("/email/batch", batch)
    async with http_peer(app) as port:
        channel = HttpEmailChannel(f"http://127.0.0.1:{port}", "k3y", sender="a@shop.example",
                                   batch_size=50)
        notifier = Notifier(broker, channels={"email": channel})
        ids = await notifier.asend_many(
            [Email(to=f"m{i}@example.com", subject=f"S{i}", text="T") for i in range(5)]
            + [Email(to="bad@example.com", subject="S", text="T")])
        clock = broker._clock

        async def settled() -> bool:
            c = (await notifier.counts())["email"]
            return c["sent"] + c["failed"] == 6

        done = {"v": False}

        def step() -> None:
            clock.advance(2)

        import asyncio

        async def watch() -> None:
            while not done["v"]:
                done["v"] = await settled()
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        await deliver_until(notifier, lambda: done["v"], clock_step=step)
        await watcher
    assert len(calls) == 2 and len(calls[0]) == 6 and calls[0] == calls[1]
    assert calls[1][0]["message_id"] == ids[0] and calls[1][0]["subject"] == "S0"
    rows = [await notifier.status(i) for i in ids]
    assert [r.status for r in rows if r] == ["sent"] * 5 + ["failed"]
    assert rows[0] is not None and rows[0].provider_id == "pm-m0@example.com"
    assert rows[5] is not None and "bad address" in (rows[5].error or "")


async def test_apprise_json_url_into_an_http_sink(broker: Any) -> None:
    got: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(orjson.loads(await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with http_peer(app) as port:
        notifier = Notifier(broker, channels={"apprise": AppriseChannel()},
                            templates={"t.subject": "Hey {{ n }}", "t.txt": "body {{ n }}"})
        await notifier.asend_many([Apprise(url=f"json://127.0.0.1:{port}/hook",
                                           template="t", data={"n": i}) for i in range(3)])
        await deliver_until(notifier, lambda: len(got) >= 3)
    assert sorted(g["title"] for g in got) == ["Hey 0", "Hey 1", "Hey 2"]
    assert sorted(g["message"] for g in got) == ["body 0", "body 1", "body 2"]
    assert (await notifier.counts())["apprise"]["sent"] == 3


# STARTTLS and AUTH ----------------------------------------------------------------------
def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"ann" and \
        auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


@contextlib.contextmanager
def tls_smtp(sink: SmtpSink, cert: Path, key: Path) -> Iterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, authenticator=_authenticator,
                            auth_required=True)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


async def test_pipelined_client_starttls_and_auth(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    sink = SmtpSink()
    with tls_smtp(sink, cert, key) as port:
        conn = PipelinedConnection("127.0.0.1", port, starttls=trust, username="ann",
                                   password="s3cret", timeout=10)
        await conn.connect()
        assert "AUTH" in conn.extensions
        results = await conn.send_many([("a@shop.example", f"t{i}@example.com",
                                         b"Subject: x\r\n\r\nhello\r\n") for i in range(5)])
        await conn.close()
        assert [r.outcome for r in results] == ["sent"] * 5
        wrong = PipelinedConnection("127.0.0.1", port, starttls=trust, username="ann",
                                    password="nope", timeout=10)
        try:
            await wrong.connect()
            raise AssertionError("a wrong password must not connect")
        except SmtpError as exc:
            assert "AUTH 535" in str(exc)
        # without STARTTLS the server refuses to go on: a session error, not a send
        plain = PipelinedConnection("127.0.0.1", port, username="ann", password="s3cret",
                                    timeout=10)
        try:
            await plain.connect()
            raise AssertionError("AUTH without TLS must fail")
        except SmtpError:
            pass
        # the channel with the same options delivers (and a bad password is transient)
        channel = SmtpChannel("127.0.0.1", port, starttls=True, ssl_context=trust,
                              username="ann", password="s3cret", pipelining=True)
        item = Item("id1", "c@example.com", None, {}, {"subject": "s", "text": "t"}, 0)
        (result,) = await channel.send_many([item], [channel.render(item)])
        await channel.close()
        assert result.outcome == "sent"
    assert sorted(sink.received) == sorted([f"t{i}@example.com" for i in range(5)]
                                           + ["c@example.com"])


@pytest.mark.parametrize("pipelining", [True, False])
async def test_starttls_refuses_a_certificate_for_another_name(tmp_path: Path,
                                                               pipelining: bool) -> None:
    # Trusted, but issued for another host: a man in the middle with any certificate the
    # client trusts. The pipelined client's STARTTLS used to skip the name check.
    cert, key = self_signed(tmp_path, ("mail.other.example",))
    trust = ssl.create_default_context(cafile=str(cert))
    sink = SmtpSink()
    with tls_smtp(sink, cert, key) as port:
        if pipelining:
            conn = PipelinedConnection("127.0.0.1", port, starttls=trust, username="ann",
                                       password="s3cret", timeout=10)
            with pytest.raises(SmtpError, match=r"not valid for '127\.0\.0\.1'"):
                await conn.connect()
        channel = SmtpChannel("127.0.0.1", port, starttls=True, ssl_context=trust,
                              username="ann", password="s3cret", pipelining=pipelining)
        item = Item("id1", "c@example.com", None, {}, {"subject": "s", "text": "t"}, 0)
        (result,) = await channel.send_many([item], [channel.render(item)])
        await channel.close()
    assert result.outcome == "transient" and "127.0.0.1" in (result.detail or "")
    assert not sink.received


@contextlib.asynccontextmanager
async def paced_smtp(delays: list[float]) -> AsyncIterator[int]:
    """A pipelining SMTP server on loopback that answers each command group (one per
    message) after the next of `delays` seconds, and stops answering when they run out."""
    import asyncio

    async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 paced ESMTP\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250-paced\r\n250 PIPELINING\r\n")
        pace = iter(delays)
        in_data = False
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        writer.write(b"250 2.0.0 queued\r\n")
                    continue
                if line.startswith(b"MAIL"):
                    await asyncio.sleep(next(pace, 3600.0))
                    writer.write(b"250 2.1.0 ok\r\n")
                elif line.startswith(b"RCPT"):
                    writer.write(b"250 2.1.5 ok\r\n")
                elif line.startswith(b"DATA"):
                    writer.write(b"354 go on\r\n")
                    in_data = True
                else:
                    writer.write(b"221 bye\r\n")
                    break

    async with tcp_sessions(converse) as port:
        yield port


async def test_pipelined_client_times_out_per_group_not_per_batch() -> None:
    import time

    messages = [("a@shop.example", f"t{i}@example.com", b"Subject: x\r\n\r\nhi\r\n")
                for i in range(4)]
    # Each group answered within the timeout, the batch as a whole after it: all sent.
    async with paced_smtp([0.3] * 4) as port:
        conn = PipelinedConnection("127.0.0.1", port, timeout=0.6)
        await conn.connect()
        results = await conn.send_many(messages)
        await conn.close()
    assert [r.outcome for r in results] == ["sent"] * 4
    # A server that stops answering after the first message: that one is sent (its
    # end-of-data answered), the rest are transient, within about one timeout.
    async with paced_smtp([0.0]) as port:
        conn = PipelinedConnection("127.0.0.1", port, timeout=0.5)
        await conn.connect()
        started = time.monotonic()
        results = await conn.send_many(messages)
        took = time.monotonic() - started
    assert [r.outcome for r in results] == ["sent", "transient", "transient", "transient"]
    assert 0.4 < took < 2.0 and not conn.connected
