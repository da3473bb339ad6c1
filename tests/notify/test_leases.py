"""A queue message whose lease would expire while the first worker is still sending: the
worker keeps the lease, a second worker never gets it and nothing is sent twice; a worker
that did lose a lease sends nothing of that envelope. Also: the SMTP pool never opens more
connections than `pool_size`, and a long render leaves the loop to the other lanes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.demo.loopback import SmtpSink
from conveyor.notify import (
    Channel,
    DeliveryOptions,
    Email,
    Item,
    Notifier,
    Result,
    SmtpChannel,
)
from conveyor.notify.delivery import RENDER_TURN, queue_name
from tests.notify.helpers import smtp_server


class GatedChannel(Channel):
    """Sends by counting, each send_many waiting for `gate` first; resends unknown
    outcomes (like SMTP), so a second worker seeing `sending` would send again."""

    kind = "email"
    resend_unknown = True

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.sent: list[str] = []

    def render(self, item: Item) -> Any:
        return item.to

    async def send_many(self, items: Sequence[Item], payloads: Sequence[Any]) -> list[Result]:
        self.entered.set()
        await self.gate.wait()
        self.sent += list(payloads)
        return [Result.sent(f"id-{p}") for p in payloads]


async def _lease_extended(broker: Broker, clock: ManualClock, timeout: float = 10) -> None:
    """Wait until the (one) envelope's lease runs 30 s from the clock's now."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        (peeked,) = await broker.peek(queue_name("email"))
        if peeked.visible_at >= clock() + 29_000:
            return
        assert asyncio.get_running_loop().time() < deadline, "no heartbeat extended the lease"
        await asyncio.sleep(0.01)


async def test_a_slow_send_keeps_its_lease_and_nothing_is_sent_twice(
        broker: Broker, clock: ManualClock) -> None:
    channel = GatedChannel()
    notifier = Notifier(broker, channels={"email": channel})
    ids = await notifier.asend_many([Email(to=f"u{i}@example.com", subject="s", text="t")
                                     for i in range(5)])
    options = DeliveryOptions(visibility_timeout=30, heartbeat_seconds=0.02)
    first = notifier.deliverer(options)
    (message,) = await broker.receive(queue_name("email"), 10, 30, 0)
    work = asyncio.create_task(first.process("email", channel, [message]))
    await asyncio.wait_for(channel.entered.wait(), 5)
    for _ in range(6):  # three minutes pass while the provider call hangs
        clock.advance(25)
        # A heartbeat extends the lease meanwhile (to 30 s from now): waited for, not
        # slept for, since a loaded machine can take longer than a fixed pause.
        await _lease_extended(broker, clock)
        assert await broker.receive(queue_name("email"), 10, 30, 0) == []
    channel.gate.set()
    await asyncio.wait_for(work, 5)
    assert sorted(channel.sent) == sorted(f"u{i}@example.com" for i in range(5))
    for delivery_id in ids:
        row = await notifier.status(delivery_id)
        assert row is not None and row.status == "sent" and row.attempts == 1
    clock.advance(120)  # acked: it never comes back
    assert await broker.receive(queue_name("email"), 10, 30, 0) == []


async def test_a_worker_that_lost_its_lease_sends_nothing_of_it(
        broker: Broker, clock: ManualClock) -> None:
    channel = GatedChannel()
    channel.gate.set()
    notifier = Notifier(broker, channels={"email": channel})
    ids = await notifier.asend_many([Email(to=f"u{i}@example.com", subject="s", text="t")
                                     for i in range(3)])
    stalled = notifier.deliverer(DeliveryOptions(visibility_timeout=30,
                                                 heartbeat_seconds=0))
    (old,) = await broker.receive(queue_name("email"), 10, 30, 0)
    clock.advance(31)  # the first worker stalled past its lease; a second one has it now
    (new,) = await broker.receive(queue_name("email"), 10, 30, 0)
    await stalled.process("email", channel, [old])
    assert channel.sent == [] and stalled.stats.lease_lost == 3
    for delivery_id in ids:  # never marked `sending`: nothing in doubt, the holder sends
        row = await notifier.status(delivery_id)
        assert row is not None and row.status == "queued" and row.attempts == 0
    holder = notifier.deliverer(DeliveryOptions(visibility_timeout=30))
    await holder.process("email", channel, [new])
    assert sorted(channel.sent) == ["u0@example.com", "u1@example.com", "u2@example.com"]
    assert holder.stats.sent == 3
    clock.advance(120)
    assert await broker.receive(queue_name("email"), 10, 30, 0) == []


async def test_smtp_pool_never_exceeds_pool_size(broker: Broker) -> None:
    sink = SmtpSink()
    with smtp_server(sink) as port:
        channel = SmtpChannel("127.0.0.1", port, pool_size=3, pipelining=False)
        peak = 0
        real_new = channel._new

        async def counted() -> Any:
            nonlocal peak
            conn = await real_new()
            peak = max(peak, channel.connections)
            return conn

        channel._new = counted  # type: ignore[method-assign]
        items = [Item(f"id{i}", f"u{i}@example.com", None, {}, {"subject": "s", "text": "t"},
                      0) for i in range(60)]
        payloads = [channel.render(i) for i in items]
        # several lanes at once, each spreading its batch over the pool
        answers = await asyncio.gather(*(channel.send_many(items[j::4], payloads[j::4])
                                         for j in range(4)))
        await channel.close()
    assert all(r.outcome == "sent" for got in answers for r in got)
    assert len(sink.messages) == 60
    assert 1 <= peak <= 3


async def test_a_lease_not_confirmed_in_time_is_given_up_not_acked(
        broker: Broker, clock: ManualClock) -> None:
    # The broker answers the confirmation slower than half a lease (a loaded machine):
    # nothing may be sent, and the envelope must come back whole, not be acked unsent.
    channel = GatedChannel()
    channel.gate.set()
    notifier = Notifier(broker, channels={"email": channel})
    ids = await notifier.asend_many([Email(to=f"s{i}@example.com", subject="s", text="t")
                                     for i in range(3)])
    real = broker.change_visibility

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(1.1)  # over half of the 2-second lease
        return await real(*args, **kwargs)

    broker.change_visibility = slow  # type: ignore[method-assign]
    worker = notifier.deliverer(DeliveryOptions(visibility_timeout=2, heartbeat_seconds=0))
    (message,) = await broker.receive(queue_name("email"), 10, 2, 0)
    await worker.process("email", channel, [message])
    broker.change_visibility = real  # type: ignore[method-assign]
    assert channel.sent == [] and worker.stats.lease_lost == 3
    clock.advance(3)
    (again,) = await broker.receive(queue_name("email"), 10, 30, 0)  # not acked
    await notifier.deliverer().process("email", channel, [again])
    assert sorted(channel.sent) == ["s0@example.com", "s1@example.com", "s2@example.com"]
    for delivery_id in ids:
        row = await notifier.status(delivery_id)
        assert row is not None and row.status == "sent"


class SlowRenderChannel(GatedChannel):
    """Renders in 1 ms of CPU a message (like Web Push's encryption of a big batch), noting
    what the `ticks` counter said at each render."""

    def __init__(self) -> None:
        super().__init__()
        self.gate.set()
        self.ticks = 0
        self.seen: list[int] = []

    def render(self, item: Item) -> Any:
        time.sleep(0.001)
        self.seen.append(self.ticks)
        return item.to


async def test_a_long_render_lets_the_other_lanes_run_meanwhile(broker: Broker) -> None:
    """200 ms of rendering one batch is cut into turns of `RENDER_TURN`: a task of the same
    loop (another lane's SMTP round trip, a lease's heartbeat) runs between them."""
    channel = SlowRenderChannel()
    notifier = Notifier(broker, channels={"email": channel})
    await notifier.asend_many([Email(to=f"u{i}@example.com", subject="s", text="t")
                               for i in range(200)])
    messages = await broker.receive(queue_name("email"), 10, 30, 0)

    async def tick() -> None:
        while True:
            channel.ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        await notifier.deliverer(DeliveryOptions()).process("email", channel, messages)
    finally:
        ticker.cancel()
    assert len(channel.seen) == 200 and len(channel.sent) == 200
    assert channel.seen[-1] - channel.seen[0] >= 200 * 0.001 / RENDER_TURN / 4
