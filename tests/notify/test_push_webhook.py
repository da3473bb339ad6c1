"""Web Push into a real local push endpoint (VAPID verified, payload decrypted), and signed
webhooks: content, Retry-After on 429, dead letters and suppression on 410; a push left in
doubt by a crash resent with its Topic, or held as unknown when so configured."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from conveyor.broker.broker import Broker
from conveyor.demo.loopback import PushEndpoint, make_subscriber
from conveyor.ledger import Delivery, DeliveryUpdate, NewDelivery
from conveyor.notify import DeliveryOptions, Notifier, WebhookChannel, WebPush, WebPushChannel
from conveyor.notify.delivery import Deliverer, dlq_name
from conveyor.notify.models import Webhook
from tests.notify.helpers import TEMPLATES, deliver_until, free_port


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    port = free_port()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


def push_channel() -> WebPushChannel:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return WebPushChannel(pem, {"sub": "mailto:ops@example.com"})


async def test_push_delivered_verified_and_faults(broker: Broker, clock: Any) -> None:
    subs = [make_subscriber() for _ in range(3)]
    endpoint = PushEndpoint(subs, faults={"1": [(429, "1")], "2": [(410, None)]})
    async with serving(endpoint.app()) as port:
        notifier = Notifier(broker, channels={"push": push_channel()}, templates=TEMPLATES)
        ids = await notifier.asend_many([
            WebPush(subscription=subs[i].subscription(f"http://127.0.0.1:{port}/push/{i}"),
                    template="welcome", data={"name": f"n{i}", "code": i})
            for i in range(3)])

        async def settled() -> bool:
            c = (await notifier.counts())["push"]
            return c["sent"] + c["failed"] == 3

        flag = {"done": False}

        async def watch() -> None:
            while not flag["done"]:
                flag["done"] = await settled()
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        await deliver_until(notifier, lambda: flag["done"], clock_step=lambda: clock.advance(2))
        await watcher
    assert endpoint.bad == 0 and endpoint.verified == 2
    assert endpoint.received == {"0": 1, "1": 1}
    body = orjson.loads(endpoint.payloads["0"])
    assert body["title"] == "Welcome, n0" and body["body"].startswith("Hi n0,")
    ok, slow, gone = [await notifier.status(i) for i in ids]
    assert ok is not None and ok.status == "sent" and ok.provider_id
    assert slow is not None and slow.status == "sent" and slow.attempts == 2
    assert gone is not None and gone.status == "failed" and "410" in (gone.error or "")
    endpoint_2 = f"http://127.0.0.1:{port}/push/2"
    assert await broker.ledger.suppressed("push", [endpoint_2]) == {endpoint_2}
    dead = await broker.receive(dlq_name("push"), 10, 30, 0)
    assert [m.body.value()["to"] for m in dead] == [endpoint_2]


async def _deliver_one_push(broker: Broker, options: DeliveryOptions,
                            meanwhile: Callable[[str], Awaitable[None]], receives: int,
                            payload: Any = None) -> tuple[PushEndpoint, Deliverer, str]:
    """One push notification (`payload`, else `{"x": 1}`) queued, `meanwhile(delivery id)`
    done, then delivered by a worker with `options` whose receive is the envelope's
    `receives`-th."""
    sub = make_subscriber()
    endpoint = PushEndpoint([sub])
    channel = push_channel()
    async with serving(endpoint.app()) as port:
        notifier = Notifier(broker, channels={"push": channel}, templates=TEMPLATES)
        (pid,) = await notifier.asend_many([WebPush(
            subscription=sub.subscription(f"http://127.0.0.1:{port}/push/0"),
            payload={"x": 1} if payload is None else payload)])
        deliverer = notifier.deliverer(options)
        await deliverer.ensure_queues()
        await meanwhile(pid)
        messages = await broker.receive("notify-push", 10, 30, 0)
        assert [m.receive_count for m in messages] == [receives]
        try:
            await deliverer.process("push", channel, messages)
        finally:
            await channel.close()
    return endpoint, deliverer, pid


async def _push_in_doubt(broker: Broker, options: DeliveryOptions
                         ) -> tuple[PushEndpoint, Delivery | None, str]:
    """A push notification that a worker marked `sending`, handed to the push service and
    died before recording, then delivered by a new worker with `options`."""
    async def died(pid: str) -> None:
        # The worker that died received the envelope (visible again at once here) and
        # began its item; the new worker's receive is the envelope's second.
        assert await broker.receive("notify-push", 10, 0, 0)
        await broker.ledger.begin([NewDelivery(pid, "push", "x")])

    endpoint, _, pid = await _deliver_one_push(broker, options, died, 2)
    return endpoint, await broker.ledger.get(pid), pid


async def test_push_in_doubt_is_resent_with_its_topic(broker: Broker) -> None:
    endpoint, row, pid = await _push_in_doubt(broker, DeliveryOptions())
    assert row is not None and row.status == "sent" and row.resends == 1
    assert endpoint.received == {"0": 1} and endpoint.topics == {pid: 1}
    assert await broker.ledger.resent() == {"push": 1}


async def test_push_in_doubt_held_as_unknown_when_configured(broker: Broker) -> None:
    endpoint, row, _ = await _push_in_doubt(
        broker, DeliveryOptions(hold_unknown=frozenset({"push"})))
    assert row is not None and row.status == "unknown" and "operator" in (row.error or "")
    assert endpoint.received == {}  # not sent again
    assert await broker.ledger.resent() == {}


async def test_a_first_receive_still_skips_an_item_finished_meanwhile(broker: Broker
                                                                        ) -> None:
    """A first receive skips the statuses read before rendering; the write that marks
    the chunk `sending` still finds the final row and leaves it (and sends nothing)."""
    async def cancelled(pid: str) -> None:
        await broker.ledger.finish([DeliveryUpdate(pid, "skipped", "cancelled")])

    endpoint, deliverer, pid = await _deliver_one_push(broker, DeliveryOptions(),
                                                       cancelled, 1)
    row = await broker.ledger.get(pid)
    assert row is not None and (row.status, row.attempts) == ("skipped", 0)
    assert endpoint.received == {} and deliverer.stats.skipped == 1
    assert await broker.receive("notify-push", 10, 30, 0) == []  # acknowledged


async def _nothing(pid: str) -> None:
    pass


async def test_the_largest_payload_is_delivered_and_one_byte_more_refused(broker: Broker
                                                                         ) -> None:
    """3,993 bytes encrypt to the 4,096-byte body every push service must take (RFC 8291
    4); one byte more fails at once as permanent, never reaching the push service."""
    at_limit = {"x": "a" * (WebPushChannel.payload_limit - len('{"x":""}'))}
    endpoint, _, pid = await _deliver_one_push(broker, DeliveryOptions(), _nothing, 1,
                                               at_limit)
    row = await broker.ledger.get(pid)
    assert row is not None and row.status == "sent"
    assert endpoint.verified == 1 and orjson.loads(endpoint.payloads["0"]) == at_limit
    over = {"x": at_limit["x"] + "a"}
    endpoint, _, pid = await _deliver_one_push(broker, DeliveryOptions(), _nothing, 1, over)
    row = await broker.ledger.get(pid)
    assert row is not None and row.status == "failed" and "3,994 bytes" in (row.error or "")
    assert endpoint.received == {} and endpoint.bad == 0


async def test_webhook_signed_and_retried_on_503(broker: Broker, clock: Any) -> None:
    seen: list[tuple[dict[str, str], bytes]] = []
    answers = [web.Response(status=503, headers={"Retry-After": "1"})]

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if answers:
            return answers.pop(0)
        seen.append((dict(request.headers), body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as port:
        notifier = Notifier(broker, channels={"webhook": WebhookChannel("s3cret")})
        (wid,) = await notifier.asend_many([Webhook(url=f"http://127.0.0.1:{port}/hook",
                                                    event="order.paid", payload={"n": 1})])
        await deliver_until(notifier, lambda: bool(seen), clock_step=lambda: clock.advance(2))
    headers, body = seen[0]
    stamp = headers["Conveyor-Timestamp"]
    mac = hmac.new(b"s3cret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["Conveyor-Signature"] == f"sha256={mac}"
    assert headers["Conveyor-Delivery"] == headers["Idempotency-Key"] == wid
    assert orjson.loads(body) == {"id": wid, "event": "order.paid", "data": {"n": 1}}
    row = await notifier.status(wid)
    assert row is not None and row.status in ("sending", "sent") and row.attempts == 2


def test_headers_a_push_service_would_refuse_fail_at_render() -> None:
    """A Topic or Urgency outside RFC 8030, or an endpoint that is no http(s) URL, is a
    permanent render failure with its reason, before any request (a line break in one
    would otherwise end a header line)."""
    from conveyor.errors import InvalidInput
    from conveyor.notify.models import Item

    channel = push_channel()
    sub = make_subscriber().subscription("https://push.example/p/1")

    def item(**extra: Any) -> Item:
        return Item("0" * 32, "x", None, {}, {"payload": "hi", "subscription": sub,
                                              **extra}, 0)

    endpoint, headers, _ = channel.render(item(urgency="low", topic="sale-1"))
    assert endpoint == "https://push.example/p/1"
    assert headers["Urgency"] == "low" and headers["Topic"] == "sale-1"
    for bad, field in (({"topic": "a\r\nX: 1"}, "topic"), ({"topic": "x" * 33}, "topic"),
                       ({"urgency": "asap"}, "urgency"),
                       ({"subscription": {**sub, "endpoint": "ftp://push.example/1"}},
                        "subscription"),
                       ({"subscription": {**sub, "endpoint": "https://p.example/a\r\nb"}},
                        "subscription")):
        try:
            channel.render(item(**bad))
        except InvalidInput as exc:
            assert exc.field == field
        else:
            raise AssertionError(f"{bad} rendered")
