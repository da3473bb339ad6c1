"""Paused queues and long polling (real waits, measured; leases still use the ManualClock)."""

from __future__ import annotations

import asyncio
import time

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from tests.conftest import OpenBroker
from tests.support.messages import bodies, send
from tests.support.waiting import until_waiting

# A waiting receive must return this soon after a send: far below both the wait and the
# broker's polling fallback (1 s), so only a wake-up can explain it.
PROMPT = 0.4


async def test_paused_queue_accepts_sends_and_delivers_nothing(broker: Broker) -> None:
    await broker.create_queue("q")
    await broker.update_queue("q", {"paused": True})
    ids = await send(broker, "q", "a", "b")
    assert len(ids) == 2
    assert await broker.receive("q") == []
    assert (await broker.queue_stats("q")).visible == 2
    await broker.update_queue("q", {"paused": False})
    assert sorted(bodies(await broker.receive("q"))) == ["a", "b"]


async def test_paused_at_creation(broker: Broker) -> None:
    await broker.create_queue("q", {"paused": True})
    await send(broker, "q", "a")
    assert await broker.receive("q") == []


async def test_pause_is_seen_by_other_brokers(broker: Broker, open_broker: OpenBroker) -> None:
    other = await open_broker(queue_cache_seconds=0)
    await broker.create_queue("q")
    await send(broker, "q", "a")
    await broker.update_queue("q", {"paused": True})
    assert await other.receive("q") == []
    await broker.update_queue("q", {"paused": False})
    assert bodies(await other.receive("q")) == ["a"]


async def _timed_receive(broker: Broker, queue: str, wait: int) -> tuple[list, float]:  # type: ignore[type-arg]
    started = time.monotonic()
    got = await broker.receive(queue, wait_seconds=wait)
    return got, time.monotonic() - started


async def test_long_poll_returns_as_soon_as_a_message_arrives(broker: Broker) -> None:
    await broker.create_queue("q")
    waiting = asyncio.create_task(_timed_receive(broker, "q", 10))
    await until_waiting(broker, 1)
    assert not waiting.done()
    sent = time.monotonic()
    await send(broker, "q", "wake up")
    got, _ = await asyncio.wait_for(waiting, 5)
    assert bodies(got) == ["wake up"]
    assert time.monotonic() - sent < PROMPT


async def test_long_poll_wakes_on_a_send_through_another_broker(
        broker: Broker, open_broker: OpenBroker) -> None:
    """Another node (its own connections): woken by NOTIFY or the SQLite data_version poll."""
    producer = await open_broker()
    await broker.create_queue("q")
    waiting = asyncio.create_task(_timed_receive(broker, "q", 10))
    await until_waiting(broker, 1)
    sent = time.monotonic()
    await send(producer, "q", "from afar")
    got, _ = await asyncio.wait_for(waiting, 5)
    assert bodies(got) == ["from afar"]
    assert time.monotonic() - sent < PROMPT


async def test_long_poll_wakes_on_resume(broker: Broker) -> None:
    await broker.create_queue("q", {"paused": True})
    await send(broker, "q", "held")
    waiting = asyncio.create_task(_timed_receive(broker, "q", 10))
    await until_waiting(broker, 1)
    resumed = time.monotonic()
    await broker.update_queue("q", {"paused": False})
    got, _ = await asyncio.wait_for(waiting, 5)
    assert bodies(got) == ["held"]
    assert time.monotonic() - resumed < PROMPT


async def test_long_poll_wakes_on_release(broker: Broker) -> None:
    from conveyor.models import VisibilityEntry

    await broker.create_queue("q")
    await send(broker, "q", "x")
    [m] = await broker.receive("q")
    waiting = asyncio.create_task(_timed_receive(broker, "q", 10))
    await until_waiting(broker, 1)
    released = time.monotonic()
    await broker.change_visibility("q", [VisibilityEntry(m.receipt_handle, 0)])
    got, _ = await asyncio.wait_for(waiting, 5)
    assert [g.receive_count for g in got] == [2]
    assert time.monotonic() - released < PROMPT


async def test_long_poll_returns_empty_at_the_deadline(broker: Broker) -> None:
    await broker.create_queue("q")
    got, took = await _timed_receive(broker, "q", 1)
    assert got == []
    assert 0.95 <= took < 1.6


async def test_delayed_send_does_not_end_a_long_poll(broker: Broker) -> None:
    await broker.create_queue("q")
    waiting = asyncio.create_task(_timed_receive(broker, "q", 1))
    await until_waiting(broker, 1)
    await send(broker, "q", "later", delay_seconds=60)
    got, took = await asyncio.wait_for(waiting, 5)
    assert got == [] and took >= 0.95


async def test_queue_receive_wait_is_the_default(broker: Broker) -> None:
    await broker.create_queue("q", {"receive_wait_seconds": 1})
    started = time.monotonic()
    assert await broker.receive("q") == []
    assert time.monotonic() - started >= 0.95
    started = time.monotonic()
    assert await broker.receive("q", wait_seconds=0) == []
    assert time.monotonic() - started < 0.5


async def test_no_wait_returns_at_once(broker: Broker) -> None:
    await broker.create_queue("q")
    started = time.monotonic()
    assert await broker.receive("q", wait_seconds=0) == []
    assert time.monotonic() - started < 0.5


async def test_one_send_wakes_one_of_many_waiters(broker: Broker,
                                                  clock: ManualClock) -> None:
    await broker.create_queue("q")
    waiters = [asyncio.create_task(_timed_receive(broker, "q", 1)) for _ in range(4)]
    await until_waiting(broker, 4)
    await send(broker, "q", "only one")
    results = await asyncio.gather(*waiters)
    delivered = [got for got, _ in results if got]
    assert len(delivered) == 1 and bodies(delivered[0]) == ["only one"]


async def test_wait_bounds(broker: Broker) -> None:
    from conveyor.errors import InvalidInput

    await broker.create_queue("q")
    for wait in (-1, 21):
        with pytest.raises(InvalidInput):
            await broker.receive("q", wait_seconds=wait)


async def test_time_alone_wakes_waiting_receives_with_one_check_per_interval(
        open_broker: OpenBroker, clock: ManualClock) -> None:
    """A delay or a lease that runs out signals nothing: a watcher per queue finds it, with
    one cheap check per poll interval however many receives wait, and no claims."""
    broker = await open_broker(poll_interval=0.2)
    await broker.create_queue("q")
    await send(broker, "q", "later", delay_seconds=5)
    storage = broker.storage
    calls = {"claims": 0, "checks": 0}
    claim, check = storage.message_receive, storage.message_ready

    async def counted_claim(params: object) -> object:
        calls["claims"] += 1
        return await claim(params)  # type: ignore[arg-type]

    async def counted_check(queue_id: int, now: int | None) -> bool:
        calls["checks"] += 1
        return await check(queue_id, now)

    storage.message_receive = counted_claim  # type: ignore[assignment,method-assign]
    storage.message_ready = counted_check  # type: ignore[method-assign]
    waiters = [asyncio.create_task(_timed_receive(broker, "q", 10)) for _ in range(20)]
    await asyncio.sleep(1.1)
    # About 5 intervals went by: 20 first claims, 5 checks, not 100 claims.
    assert calls["claims"] == 20 and 3 <= calls["checks"] <= 7
    clock.advance(5)  # the delay ends: nothing is sent, nothing signals
    done, _ = await asyncio.wait(waiters, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    [(got, took)] = [task.result() for task in done]
    assert bodies(got) == ["later"] and took < 1.1 + 0.2 + PROMPT
    # The other 19 would wait out their 10 s: answer them now, as a shutting-down server does.
    broker.end_long_polls()
    rest = await asyncio.wait_for(asyncio.gather(*(t for t in waiters if t not in done)), 5)
    assert [got for got, _ in rest] == [[]] * 19


async def test_a_paused_queue_is_not_ready(broker: Broker) -> None:
    await broker.create_queue("q", {"paused": True})
    await send(broker, "q", "held")
    queue = await broker.get_queue("q")
    assert not await broker.storage.message_ready(queue.id, broker.now())
    await broker.update_queue("q", {"paused": False})
    assert await broker.storage.message_ready(queue.id, broker.now())
