"""Cron ticks: each (schedule, tick) is claimed by exactly one scheduler."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput
from tests.conftest import OpenBroker

MINUTE = 60_000


async def test_three_schedulers_claim_each_tick_once(open_broker: OpenBroker,
                                                     clock: ManualClock) -> None:
    brokers = [await open_broker() for _ in range(3)]
    first = clock.ms - clock.ms % MINUTE
    winners: dict[int, list[int]] = {}
    for tick in range(20):
        tick_at = first + tick * MINUTE
        # Each tick another scheduler asks first (on a quiet machine the first one asking
        # tends to win), so the claim is shown to go to whoever asks, not to one of them.
        order = [(tick + k) % len(brokers) for k in range(len(brokers))]
        claimants = [i for i in order for _ in range(2)]
        results = await asyncio.gather(*(
            brokers[i].jobs.cron_claim("digest", tick_at) for i in claimants))
        winners[tick] = [i for i, won in zip(claimants, results) if won]
    assert all(len(w) == 1 for w in winners.values()), winners
    assert len({w[0] for w in winners.values()}) > 1  # not always the same scheduler


async def test_schedules_and_ticks_are_separate(broker: Broker, clock: ManualClock) -> None:
    assert await broker.jobs.cron_claim("a", clock.ms)
    assert await broker.jobs.cron_claim("b", clock.ms)
    assert await broker.jobs.cron_claim("a", clock.ms + MINUTE)
    assert not await broker.jobs.cron_claim("a", clock.ms)


async def test_a_tick_is_remembered_for_a_week_after_its_claim(
        broker: Broker, clock: ManualClock) -> None:
    tick = clock.ms
    assert await broker.jobs.cron_claim("weekly", tick)
    assert await broker.jobs.cron_claim("epoch", 60_000)  # any clock: the tick is a name
    clock.advance(6 * 86_400)
    await broker.sweep()
    assert not await broker.jobs.cron_claim("weekly", tick)  # still remembered
    assert not await broker.jobs.cron_claim("epoch", 60_000)
    clock.advance(2 * 86_400)
    await broker.sweep()  # forgotten a week after the claim
    assert await broker.jobs.cron_claim("epoch", 60_000)


@pytest.mark.parametrize(("schedule", "tick_at", "field"), [
    ("", 0, "schedule"),
    ("s" * 201, 0, "schedule"),
    ("s", -1, "tick_at"),
    ("s", 1.5, "tick_at"),
    ("s", True, "tick_at"),
])
async def test_claim_checks_its_input(sqlite_broker: Broker, schedule: str, tick_at: int,
                                      field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        await sqlite_broker.jobs.cron_claim(schedule, tick_at)
    assert info.value.field == field
