"""A delivery worker that dies mid-send leaves only the chunk it had handed to the transport
in doubt: the notifications it had claimed but not attempted are delivered as usual by
the next worker, the in-doubt ones are resent (counted) or held as `unknown`, none lost.

The crash is simulated in-process (the worker's task is cancelled while a provider call
hangs, after the provider got the bytes); `test_kill9.py` kills real worker processes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput, StorageUnavailable
from conveyor.notify import Channel, DeliveryOptions, Email, Item, Notifier, Result
from conveyor.notify.delivery import queue_name

N = 1000
CHUNK = 50


class HangingChannel(Channel):
    """Takes every notification it is handed (`got`); the `hang_at`-th call hangs after
    taking its batch, as a provider call does when the worker is killed during it."""

    kind = "email"

    def __init__(self, hang_at: int | None = None) -> None:
        super().__init__()
        self.hang_at = hang_at
        self.calls = 0
        self.got: Counter[str] = Counter()
        self.hung = asyncio.Event()

    def render(self, item: Item) -> Any:
        return item.id

    async def send_many(self, items: Sequence[Item], payloads: Sequence[Any]) -> list[Result]:
        self.calls += 1
        self.got.update(payloads)
        if self.calls == self.hang_at:
            self.hung.set()
            await asyncio.Event().wait()  # until the worker dies
        return [Result.sent(f"q-{p}") for p in payloads]


async def _crash_mid_send(broker: Broker, options: DeliveryOptions
                          ) -> tuple[Notifier, HangingChannel, list[str]]:
    """Enqueue N, let one worker claim all of it and die during its fifth chunk."""
    first = HangingChannel(hang_at=5)
    notifier = Notifier(broker, channels={"email": first}, envelope_size=100)
    ids = await notifier.asend_many([Email(to=f"c{i}@example.com", subject="s", text="t")
                                     for i in range(N)])
    claimed = await broker.receive(queue_name("email"), 10, options.visibility_timeout, 0)
    assert len(claimed) == N // 100  # the whole backlog in the worker's hands
    worker = notifier.deliverer(options)
    task = asyncio.create_task(worker.process("email", first, claimed))
    await asyncio.wait_for(first.hung.wait(), 10)
    task.cancel()  # the crash: nothing after this point runs
    await asyncio.gather(task, return_exceptions=True)
    return notifier, first, ids


async def _after_the_lease(broker: Broker, clock: ManualClock, notifier: Notifier,
                           options: DeliveryOptions) -> HangingChannel:
    """A new worker gets the envelopes once the dead worker's leases lapse."""
    clock.advance(options.visibility_timeout + 1)
    second = HangingChannel()
    again = await broker.receive(queue_name("email"), 10, options.visibility_timeout, 0)
    assert len(again) == N // 100
    await notifier.deliverer(options).process("email", second, again)
    return second


async def test_only_the_chunk_in_flight_is_in_doubt_and_it_is_resent(
        broker: Broker, clock: ManualClock) -> None:
    options = DeliveryOptions(lanes=1, in_flight=CHUNK, visibility_timeout=30,
                              heartbeat_seconds=0)
    notifier, first, ids = await _crash_mid_send(broker, options)
    counts = (await notifier.counts())["email"]
    # 4 chunks sent and recorded, the 5th on the wire, 750 claimed but never attempted
    assert counts["sent"] == 4 * CHUNK and counts["sending"] == CHUNK
    assert counts["queued"] == N - 5 * CHUNK
    in_flight = {i for i, n in first.got.items() if n} - {
        i for i in ids if (await notifier.status(i)).status == "sent"}  # type: ignore[union-attr]
    assert len(in_flight) == CHUNK

    second = await _after_the_lease(broker, clock, notifier, options)
    both = first.got + second.got
    assert set(both) == set(ids)  # lost: none
    assert {i for i, n in both.items() if n > 1} == in_flight  # extra copies: the chunk
    assert set(second.got) == set(ids) - set(first.got) | in_flight
    counts = (await notifier.counts())["email"]
    assert counts["sent"] == N and counts["sending"] == counts["unknown"] == 0
    assert await broker.ledger.resent() == {"email": CHUNK}
    row = await notifier.status(next(iter(in_flight)))
    assert row is not None and row.resends == 1 and row.attempts == 2


async def test_held_as_unknown_when_configured(broker: Broker, clock: ManualClock) -> None:
    options = DeliveryOptions(lanes=1, in_flight=CHUNK, visibility_timeout=30,
                              heartbeat_seconds=0, hold_unknown=frozenset({"email"}))
    notifier, first, ids = await _crash_mid_send(broker, options)
    second = await _after_the_lease(broker, clock, notifier, options)
    assert not set(first.got) & set(second.got)  # no copy at all
    assert set(first.got) | set(second.got) == set(ids)
    counts = (await notifier.counts())["email"]
    assert counts["unknown"] == CHUNK and counts["sent"] == N - CHUNK  # none silently
    assert await broker.ledger.resent() == {}


async def test_a_write_failing_after_a_send_still_records_its_outcomes(
        broker: Broker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """No process dies: the database refuses one write, the one that would record the
    second chunk's outcomes as the third begins (a connection killed under the worker).
    The batch fails and its leases lapse, but the outcomes of what went out are recorded
    first, so the next worker sends nothing twice (they were left `sending`, in doubt,
    and sent again: an outside probe counted 18 extra emails over 8 connection kills)."""
    options = DeliveryOptions(lanes=1, in_flight=CHUNK, visibility_timeout=30,
                              heartbeat_seconds=0)
    first = HangingChannel()  # never hangs
    notifier = Notifier(broker, channels={"email": first}, envelope_size=100)
    ids = await notifier.asend_many([Email(to=f"c{i}@example.com", subject="s", text="t")
                                     for i in range(N)])
    begin, calls = broker.ledger.begin, 0

    async def refusing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise StorageUnavailable("the database went away")
        return await begin(*args, **kwargs)

    monkeypatch.setattr(broker.ledger, "begin", refusing)
    claimed = await broker.receive(queue_name("email"), 10, options.visibility_timeout, 0)
    with pytest.raises(StorageUnavailable):
        await notifier.deliverer(options).process("email", first, claimed)
    counts = (await notifier.counts())["email"]
    assert counts["sent"] == 2 * CHUNK and counts["sending"] == 0
    monkeypatch.setattr(broker.ledger, "begin", begin)
    second = await _after_the_lease(broker, clock, notifier, options)
    both = first.got + second.got
    assert set(both) == set(ids) and max(both.values()) == 1  # none lost, none twice
    assert await broker.ledger.resent() == {}


def test_in_flight_must_cover_the_lanes() -> None:
    assert DeliveryOptions().chunk == 100  # 400 over 4 lanes
    with pytest.raises(InvalidInput) as caught:
        DeliveryOptions(lanes=4, in_flight=3)
    assert caught.value.field == "in_flight"
