"""Global concurrency slots: leased, counted across holders and brokers."""

from __future__ import annotations

import asyncio
import random

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput
from tests.conftest import OpenBroker


async def test_slots_are_granted_up_to_the_limit(broker: Broker) -> None:
    limits = broker.limits
    assert await limits.acquire("smtp", 5, "w1", want=3) == 3
    assert await limits.acquire("smtp", 5, "w2", want=3) == 2
    assert await limits.acquire("smtp", 5, "w3") == 0
    assert await limits.acquire("smtp", 5, "w1", want=1) == 0  # its own count too
    assert await limits.acquire("other", 5, "w3", want=5) == 5  # keys are independent


async def test_release_gives_slots_back(broker: Broker) -> None:
    limits = broker.limits
    assert await limits.acquire("k", 4, "a", want=4) == 4
    await limits.release("k", "a", count=3)
    assert await limits.renew("k", "a") == 1
    assert await limits.acquire("k", 4, "b", want=4) == 3
    await limits.release("k", "a", count=10)  # never below zero
    await limits.release("k", "nobody")
    assert await limits.renew("k", "a") == 0
    assert await limits.acquire("k", 4, "b", want=4) == 1


async def test_a_crashed_holders_slots_come_back(broker: Broker, clock: ManualClock) -> None:
    limits = broker.limits
    assert await limits.acquire("k", 3, "crashed", want=3, lease_seconds=10) == 3
    clock.advance(9.9)
    assert await limits.acquire("k", 3, "alive", want=3) == 0
    clock.advance(0.2)  # the lease lapsed: nobody renewed it
    assert await limits.acquire("k", 3, "alive", want=3) == 3
    assert await limits.renew("k", "crashed") == 0  # too late to renew
    assert await limits.acquire("k", 3, "crashed") == 0


async def test_renew_keeps_slots_alive(broker: Broker, clock: ManualClock) -> None:
    limits = broker.limits
    assert await limits.acquire("k", 2, "a", want=2, lease_seconds=10) == 2
    for _ in range(5):
        clock.advance(8)
        assert await limits.renew("k", "a", lease_seconds=10) == 2
    assert await limits.acquire("k", 2, "b") == 0
    clock.advance(10.5)
    assert await limits.acquire("k", 2, "b") == 1


async def test_acquire_extends_the_holders_lease(broker: Broker, clock: ManualClock) -> None:
    limits = broker.limits
    assert await limits.acquire("k", 3, "a", lease_seconds=10) == 1
    clock.advance(8)
    assert await limits.acquire("k", 3, "a", lease_seconds=10) == 1
    clock.advance(8)  # 16 s after the first acquire, 8 after the second: both alive
    assert await limits.renew("k", "a") == 2


async def test_sweep_drops_lapsed_and_empty_rows(broker: Broker, clock: ManualClock) -> None:
    limits = broker.limits
    await limits.acquire("k", 3, "lapsed", lease_seconds=1)
    await limits.acquire("k", 3, "released")
    await limits.release("k", "released")
    await limits.acquire("k", 3, "alive")
    clock.advance(2)
    assert await limits.expire() == 2
    assert await limits.renew("k", "alive") == 1


async def test_the_limit_holds_across_brokers_under_contention(
        open_broker: OpenBroker) -> None:
    """Three brokers (own connections), twelve holders grabbing and releasing at random."""
    brokers = [await open_broker() for _ in range(3)]
    limit = 7
    held = 0
    peak = 0
    granted_total = 0

    async def holder(i: int) -> None:
        nonlocal held, peak, granted_total
        rng = random.Random(i)
        limits = brokers[i % 3].limits
        mine = 0
        for _ in range(15):
            if mine and rng.random() < 0.5:
                n = rng.randint(1, mine)
                mine -= n
                held -= n  # counted down before the database: never over-counted
                await limits.release("pool", f"h{i}", n)
            else:
                n = await limits.acquire("pool", limit, f"h{i}", want=rng.randint(1, 4))
                mine += n
                held += n
                granted_total += n
                peak = max(peak, held)
                assert held <= limit
            await asyncio.sleep(0)

    await asyncio.gather(*(holder(i) for i in range(12)))
    assert peak == limit  # the contention was real
    assert granted_total > limit
    total = sum([await brokers[0].limits.renew("pool", f"h{i}") for i in range(12)])
    assert total == held <= limit


@pytest.mark.parametrize(("call", "field"), [
    ({"limit": 0}, "limit"),
    ({"limit": "3"}, "limit"),
    ({"holder": ""}, "holder"),
    ({"key": "k" * 201}, "key"),
    ({"want": 0}, "want"),
    ({"lease_seconds": 0}, "lease_seconds"),
    ({"lease_seconds": 86_401}, "lease_seconds"),
])
async def test_acquire_checks_its_input(sqlite_broker: Broker, call: dict[str, object],
                                        field: str) -> None:
    args: dict[str, object] = {"key": "k", "limit": 3, "holder": "h", "want": 1,
                               "lease_seconds": 60}
    args.update(call)
    with pytest.raises(InvalidInput) as info:
        await sqlite_broker.limits.acquire(**args)  # type: ignore[arg-type]
    assert info.value.field == field


async def test_renew_and_release_check_their_input(sqlite_broker: Broker) -> None:
    with pytest.raises(InvalidInput, match="holder"):
        await sqlite_broker.limits.renew("k", "")
    with pytest.raises(InvalidInput, match="count"):
        await sqlite_broker.limits.release("k", "h", count=0)
