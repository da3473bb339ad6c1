"""Email over SMTP into a real aiosmtpd server on loopback: content, templates, retries,
dead letters, suppression, idempotency."""

from __future__ import annotations

import asyncio
import email
import email.policy

import pytest

from conveyor.broker.broker import Broker
from conveyor.demo.loopback import SmtpSink
from conveyor.notify import Email, Notifier, SmtpChannel
from conveyor.notify.delivery import dlq_name
from tests.notify.helpers import TEMPLATES, deliver_until, smtp_server


def notifier_for(broker: Broker, port: int, **options: object) -> Notifier:
    channel = SmtpChannel("127.0.0.1", port, sender="Shop <news@shop.example>",
                          pool_size=4, unsubscribe_url="https://shop.example/u/{id}",
                          **options)  # type: ignore[arg-type]
    return Notifier(broker, channels={"email": channel}, templates=TEMPLATES)


async def test_template_content_and_headers(broker: Broker) -> None:
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = notifier_for(broker, port)
        ids = await notifier.asend_many([
            Email(to=f"u{i}@example.com", template="welcome",
                  data={"name": f"Ünïcode {i}", "code": i * 7}, bulk=True)
            for i in range(30)])
        assert (await notifier.status(ids[0])).status == "queued"  # type: ignore[union-attr]
        await deliver_until(notifier, lambda: len(sink.messages) >= 30)
    assert sorted(sink.received) == sorted(f"u{i}@example.com" for i in range(30))
    assert set(sink.received.values()) == {1}
    by_rcpt = {rcpt: data for _, rcpt, data in sink.messages}
    msg = email.message_from_bytes(by_rcpt["u3@example.com"], policy=email.policy.default)
    assert msg["Subject"] == "Welcome, Ünïcode 3"
    assert msg["From"] == "Shop <news@shop.example>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<https://shop.example/u/")
    assert msg["Message-ID"].endswith("@shop.example>")
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.replace("\r\n", "\n") == (
        "Hi Ünïcode 3,\nyour code is 21.\n.a line starting with a dot")
    assert msg.get_body(("html",)).get_content().strip() == "<p>Hi Ünïcode 3</p>"  # type: ignore[union-attr]
    counts = await notifier.counts()
    assert counts["email"]["sent"] == 30
    row = await notifier.status(ids[0])
    assert row is not None and row.status == "sent" and row.provider_id


async def test_retry_on_4xx_then_sent_and_5xx_dead_lettered(broker: Broker, clock) -> None:  # type: ignore[no-untyped-def]
    sink = SmtpSink(faults={
        "slow@example.com": ["451 4.3.0 try again later", "452 4.2.2 mailbox full"],
        "gone@example.com": ["550 5.1.1 no such user"],
        "never@example.com": ["450 4.2.0 busy"] * 10})
    with smtp_server(sink) as port:
        notifier = notifier_for(broker, port, pipelining=False)
        ids = await notifier.asend_many([
            Email(to=a, subject="s", text="t", idempotency_key=a)
            for a in ("ok@example.com", "slow@example.com", "gone@example.com",
                      "never@example.com")])

        async def settled() -> bool:
            counts = (await notifier.counts())["email"]
            return counts["sent"] + counts["failed"] == 4

        state = {"done": False}

        def step() -> None:
            clock.advance(2)

        async def watcher() -> None:
            while not state["done"]:
                state["done"] = await settled()
                await asyncio.sleep(0.05)

        watch = asyncio.create_task(watcher())
        await deliver_until(notifier, lambda: state["done"], clock_step=step)
        await watch
    ok, slow, gone, never = [await notifier.status(i) for i in ids]
    assert ok is not None and ok.status == "sent" and ok.attempts == 1
    assert slow is not None and slow.status == "sent" and slow.attempts == 3
    assert gone is not None and gone.status == "failed" and "5.1.1" in (gone.error or "")
    assert never is not None and never.status == "failed" and "gave up after 3" in (
        never.error or "")
    assert sink.received == {"ok@example.com": 1, "slow@example.com": 1}
    dead = await broker.receive(dlq_name("email"), 10, 30, 0)
    reasons = sorted(m.body.value()["error"] for m in dead)
    assert len(reasons) == 2 and "5.1.1" in reasons[0]
    assert await broker.ledger.suppressed("email", ["gone@example.com", "ok@example.com"]) \
        == {"gone@example.com"}
    # suppressed from now on: a new notification to the address is not attempted
    (again,) = await notifier.asend_many([Email(to="gone@example.com", subject="x",
                                                text="y")])
    deliverer = notifier.deliverer()
    messages = await broker.receive("notify-email", 10, 30, 0)
    await deliverer.process("email", notifier.channels["email"], messages)
    row = await notifier.status(again)
    assert row is not None and row.status == "failed" and row.error == "suppressed"


async def test_idempotency_key_and_redelivery_never_send_twice(broker: Broker) -> None:
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = notifier_for(broker, port)
        first = await notifier.asend(Email(to="a@example.com", subject="s", text="t",
                                           idempotency_key="order-1"))
        second = await notifier.asend(Email(to="a@example.com", subject="s2", text="t2",
                                            idempotency_key="order-1"))
        assert first == second
        await deliver_until(notifier, lambda: sum(sink.received.values()) >= 1)
        # the same envelope delivered again (a crash after the send, before the ack)
        from conveyor.models import Body, SendEntry
        from conveyor.notify import Envelope

        d = notifier.deliverer()
        items = notifier.items([Email(to="a@example.com", subject="s", text="t",
                                      idempotency_key="order-1")])["email"]
        await broker.send("notify-email", [SendEntry(Body(Envelope("email", 0,
                                                                   items).dumps()))])
        msgs = await broker.receive("notify-email", 10, 30, 0)
        await d.process("email", notifier.channels["email"], msgs)
        assert d.stats.skipped >= 1 and d.stats.sent == 0
    assert sink.received == {"a@example.com": 1}


@pytest.mark.parametrize("pipelining", [True, False])
async def test_pipelined_and_plain_clients_agree(broker: Broker, pipelining: bool) -> None:
    # aiosmtpd does not advertise PIPELINING; the pipelined client still speaks correct
    # SMTP to it when forced (each group waits for its replies).
    sink = SmtpSink()
    with smtp_server(sink) as port:
        notifier = notifier_for(broker, port, pipelining=pipelining)
        await notifier.asend_many([Email(to=f"p{i}@example.com", template="ping",
                                         data={"n": i}) for i in range(50)])
        await deliver_until(notifier, lambda: len(sink.messages) >= 50)
    bodies = {rcpt: data for _, rcpt, data in sink.messages}
    assert bodies["p7@example.com"].endswith(b"\r\n\r\nping 7\r\n")
    assert len(bodies) == 50


async def test_lanes_starting_together_agree_a_server_without_pipelining_gets_none() -> None:
    """Several batches sent at once on a new channel, to a server that does not offer
    PIPELINING: every connection is the plain client (a lane whose connect finished after
    another lane had learned that used to pipeline anyway)."""
    from conveyor.notify.models import Item
    from conveyor.notify.smtp import _PlainConnection

    sink = SmtpSink()
    with smtp_server(sink) as port:
        for _ in range(5):  # the race needed a few tries to show before
            channel = SmtpChannel("127.0.0.1", port, pool_size=8)
            items = [[Item(f"{k}-{i}", f"r{k}-{i}@example.com", None, {},
                           {"subject": "s", "text": "t"}, 0) for i in range(8)]
                     for k in range(4)]
            try:
                results = await asyncio.gather(*(channel.send_many(
                    batch, [channel.render(i) for i in batch]) for batch in items))
                assert all(r.outcome == "sent" for rs in results for r in rs)
                assert channel.pipelined is False
                idle = [channel._idle.get_nowait() for _ in range(channel._idle.qsize())]
                assert idle and all(isinstance(c, _PlainConnection) for c in idle)
                for conn in idle:
                    await conn.close()
            finally:
                await channel.close()
