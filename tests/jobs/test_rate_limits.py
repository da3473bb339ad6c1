"""GCRA rate limits on both backends, with a ManualClock: no sleeping."""

from __future__ import annotations

import random

import pytest

from conveyor.broker.broker import Broker
from conveyor.broker.job_system import Grant
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput


async def test_a_new_key_starts_full_and_refills_at_the_rate(broker: Broker,
                                                              clock: ManualClock) -> None:
    assert await broker.limits.take("k", 50, 10.0, want=50) == Grant(50, 0.2)
    assert await broker.limits.take("k", 50, 10.0) == Grant(0, 0.2)
    clock.advance(0.1)
    assert await broker.limits.take("k", 50, 10.0) == Grant(0, 0.1)
    clock.advance(0.1)
    assert await broker.limits.take("k", 50, 10.0, want=3) == Grant(1, 0.2)
    clock.advance(10.0)  # a full period refills the whole burst, no more
    assert await broker.limits.take("k", 50, 10.0, want=200) == Grant(50, 0.2)


async def test_chunked_takes_share_one_bucket(broker: Broker, clock: ManualClock) -> None:
    granted = [(await broker.limits.take("chunks", 300, 60.0, want=120)).granted
               for _ in range(4)]
    assert granted == [120, 120, 60, 0]
    clock.advance(30.0)  # half a minute: 150 tokens
    grant = await broker.limits.take("chunks", 300, 60.0, want=200)
    assert grant.granted == 150
    assert grant.retry_after == pytest.approx(0.2)


async def test_a_partial_grant_says_when_the_next_token_comes(broker: Broker,
                                                             clock: ManualClock) -> None:
    await broker.limits.take("p", 3, 1.0, want=3)
    clock.advance(0.5)  # 1.5 tokens: one whole one
    grant = await broker.limits.take("p", 3, 1.0, want=3)
    assert grant.granted == 1
    assert grant.retry_after == pytest.approx(0.167, abs=0.001)  # half a token to go
    clock.advance(grant.retry_after)
    assert (await broker.limits.take("p", 3, 1.0, want=3)).granted == 1


async def test_burst_caps_a_take_and_the_fill(broker: Broker, clock: ManualClock) -> None:
    assert (await broker.limits.take("b", 100, 1.0, want=50, burst=10)).granted == 10
    clock.advance(60.0)  # idle for long: still at most the burst
    assert (await broker.limits.take("b", 100, 1.0, want=50, burst=10)).granted == 10
    clock.advance(0.05)
    assert (await broker.limits.take("b", 100, 1.0, want=50, burst=10)).granted == 5


async def test_a_burst_larger_than_the_rate(broker: Broker, clock: ManualClock) -> None:
    assert (await broker.limits.take("big", 10, 1.0, want=100, burst=40)).granted == 40
    clock.advance(1.0)
    assert (await broker.limits.take("big", 10, 1.0, want=100, burst=40)).granted == 10


async def test_keys_are_independent(broker: Broker) -> None:
    assert (await broker.limits.take("domain:gmail.com", 2, 1.0, want=5)).granted == 2
    assert (await broker.limits.take("domain:gmail.com", 2, 1.0)).granted == 0
    assert (await broker.limits.take("domain:yahoo.com", 2, 1.0, want=5)).granted == 2


async def test_no_span_ever_gets_more_than_the_bound(broker: Broker,
                                                     clock: ManualClock) -> None:
    """Random chunks at random times: every prefix stays under burst + elapsed * rate."""
    rng = random.Random(7)
    rate, per, burst = 20, 1.0, 20
    start = clock.ms
    total = 0
    for _ in range(150):
        total += (await broker.limits.take("prop", rate, per, want=rng.randint(1, 15))).granted
        elapsed = (clock.ms - start) / 1000
        assert total <= burst + elapsed * rate / per + 1e-9
        clock.advance(rng.choice((0.0, 0.01, 0.05, 0.2, 0.5)))
    # and the bucket was not stingy: with takers always waiting, it gave about the rate
    elapsed = (clock.ms - start) / 1000
    assert total >= elapsed * rate / per * 0.8


async def test_fractional_intervals_lose_no_token(broker: Broker, clock: ManualClock) -> None:
    await broker.limits.take("third", 3, 1.0, want=3)
    for _ in range(30):  # 1/3 s per token is no whole number of ms
        clock.advance(1.0)
        assert (await broker.limits.take("third", 3, 1.0, want=3)).granted == 3


async def test_penalize_blocks_everyone_for_the_time(broker: Broker,
                                                     clock: ManualClock) -> None:
    assert (await broker.limits.take("smtp", 10, 1.0, want=2)).granted == 2
    await broker.limits.penalize("smtp", 30)
    assert await broker.limits.take("smtp", 10, 1.0) == Grant(0, 30.0)
    clock.advance(20)
    assert await broker.limits.take("smtp", 10, 1.0) == Grant(0, 10.0)
    await broker.limits.penalize("smtp", 1)  # a shorter penalty does not shorten it
    assert (await broker.limits.take("smtp", 10, 1.0)).retry_after == 10.0
    clock.advance(10)
    assert (await broker.limits.take("smtp", 10, 1.0, want=50)).granted == 10


async def test_penalize_an_unused_key(broker: Broker, clock: ManualClock) -> None:
    await broker.limits.penalize("fresh", 2.5)
    assert await broker.limits.take("fresh", 5, 1.0) == Grant(0, 2.5)
    clock.advance(2.5)
    assert (await broker.limits.take("fresh", 5, 1.0, want=9)).granted == 5


async def test_sweep_forgets_only_spent_buckets(broker: Broker, clock: ManualClock) -> None:
    await broker.limits.take("idle", 10, 1.0, want=10)
    await broker.limits.take("busy", 10, 100.0, want=10)
    await broker.limits.penalize("blocked", 60)
    clock.advance(2)
    assert await broker.limits.expire() == 1  # "idle" is full again: as if never used
    assert (await broker.limits.take("busy", 10, 100.0)).granted == 0
    assert (await broker.limits.take("blocked", 10, 1.0)).granted == 0
    assert (await broker.limits.take("idle", 10, 1.0, want=20)).granted == 10


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"key": ""}, "key"),
    ({"key": "x" * 201}, "key"),
    ({"key": 5}, "key"),
    ({"rate": 0}, "rate"),
    ({"rate": True}, "rate"),
    ({"rate": 2.5}, "rate"),
    ({"per": 0}, "per"),
    ({"per": -1.0}, "per"),
    ({"per": float("nan")}, "per"),
    ({"want": 0}, "want"),
    ({"want": 10_001}, "want"),
    ({"burst": 0}, "burst"),
    ({"rate": 10_000_000, "per": 1.0}, "rate"),
])
async def test_take_checks_its_input(sqlite_broker: Broker, kwargs: dict[str, object],
                                     field: str) -> None:
    args: dict[str, object] = {"key": "k", "rate": 10, "per": 1.0, "want": 1, "burst": None}
    args.update(kwargs)
    with pytest.raises(InvalidInput) as info:
        await sqlite_broker.limits.take(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.message.endswith(".")


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), 8 * 86_400, "5"])
async def test_penalize_checks_its_input(sqlite_broker: Broker, seconds: object) -> None:
    with pytest.raises(InvalidInput, match="seconds"):
        await sqlite_broker.limits.penalize("k", seconds)  # type: ignore[arg-type]
