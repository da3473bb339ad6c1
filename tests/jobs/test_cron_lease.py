"""Cron ticks claimed as leases: a claim not reported sent is taken over after its lease,
by one claimer, only within the deduplication window; a sent tick is final. Both backends,
plus a Scheduler started after another was killed between its claim and its send."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.client.async_client import AsyncClient
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput
from conveyor.http.app import create_app
from conveyor.jobs import CRON_RECLAIM_MS, CronLease
from conveyor.worker import App
from conveyor.worker.cron import Scheduler
from tests.conftest import OpenBroker

MINUTE = 60_000



def _minutely(broker: Broker, clock: ManualClock) -> App:
    """An app on `broker` with one schedule, every minute, to the queue `minutely`; the
    clock set back to the start of its minute, so that the test's few seconds on it stay
    within one tick (else, 10 s on, a new minute's tick fires too)."""
    clock.ms -= clock.ms % MINUTE
    app = App(clock=clock)
    app.use(broker)

    @app.cron("* * * * *", queue="minutely")
    def minutely() -> None: ...

    return app

async def test_a_lapsed_lease_is_taken_over_once(open_broker: OpenBroker,
                                                 clock: ManualClock) -> None:
    brokers = [await open_broker() for _ in range(3)]
    tick = clock.ms - clock.ms % MINUTE
    assert await brokers[0].jobs.cron_lease("s", tick, 10) == CronLease(True)
    # Not sent yet: the others lose it, but are told to look again.
    assert await brokers[1].jobs.cron_lease("s", tick, 10) == CronLease(False, True)
    clock.advance(9)
    assert not (await brokers[2].jobs.cron_lease("s", tick, 10)).claimed
    clock.advance(1)  # the lease has lapsed: the next tick's claim names it
    assert await brokers[1].jobs.cron_lease("s", tick + MINUTE, 10) == CronLease(
        True, False, (tick,))
    results = await asyncio.gather(*(b.jobs.cron_lease("s", tick, 10) for b in brokers))
    assert [r.claimed for r in results].count(True) == 1
    await brokers[0].jobs.cron_sent("s", tick)
    clock.advance(30)  # sent: final, never taken over nor named again
    again = await brokers[2].jobs.cron_lease("s", tick, 10)
    assert again == CronLease(False, False, (tick + MINUTE,))  # (that one is not sent)


async def test_no_takeover_past_the_deduplication_window(broker: Broker,
                                                         clock: ManualClock) -> None:
    assert (await broker.jobs.cron_lease("s", 1, 10)).claimed
    clock.advance(CRON_RECLAIM_MS / 1000)  # a send by the first claimer may be forgotten
    lease = await broker.jobs.cron_lease("s", 1, 10)
    assert not lease.claimed and lease.lapsed == ()
    assert (await broker.jobs.cron_lease("s", 2, 10)).lapsed == ()


async def test_a_plain_claim_is_final_and_blocks_a_lease(broker: Broker,
                                                         clock: ManualClock) -> None:
    # An older node's claim (no lease): never taken over, as before.
    assert await broker.jobs.cron_claim("s", 1)
    clock.advance(60)
    assert await broker.jobs.cron_lease("s", 1, 10) == CronLease(False, False)
    assert (await broker.jobs.cron_lease("s", 2, 10)).claimed
    assert not await broker.jobs.cron_claim("s", 2)  # and a lease blocks a plain claim


async def test_a_scheduler_takes_over_a_killed_schedulers_tick(
        broker: Broker, clock: ManualClock) -> None:
    app = _minutely(broker, clock)

    # A scheduler claimed this minute's tick and was killed before sending its job.
    assert (await broker.jobs.cron_lease(app.crons[0].schedule, clock.ms, 10)).claimed
    clock.advance(1)
    heir = Scheduler(app, broker, lease=10)
    assert await heir.tick() == 0  # still within the lease: watched, not sent
    assert heir.seconds_to_next() <= 10
    clock.advance(10)
    assert await heir.tick() == 1  # lapsed: taken over
    clock.advance(10)
    assert await heir.tick() == 0  # once
    messages = await broker.receive("minutely", 10)
    assert [m.deduplication_id for m in messages] == [
        f"cron-{_digest(app.crons[0].schedule)}-{clock.ms - 21_000}"]


async def test_a_scheduler_through_the_server_takes_over_a_lapsed_tick(
        broker: Broker, clock: ManualClock) -> None:
    # The lease's fields on POST /v1/cron/claim (additive: a plain claim is unchanged),
    # through the client a worker on a server uses.
    client = AsyncClient("http://localhost", transport=httpx.ASGITransport(
        app=create_app(broker)))
    try:
        assert await client.jobs.cron_lease("s", 1, 10) == CronLease(True)
        assert await client.jobs.cron_lease("s", 1, 10) == CronLease(False, True)
        clock.advance(10)
        assert await client.jobs.cron_lease("s", 2, 10) == CronLease(True, False, (1,))
        await client.jobs.cron_sent("s", 2)
        assert await client.jobs.cron_lease("s", 2, 10) == CronLease(False, False, (1,))
        assert not await client.jobs.cron_claim("s", 2)
        assert await client.jobs.cron_claim("s", 3)
        app = _minutely(broker, clock)

        tick = clock.ms - clock.ms % MINUTE
        assert (await broker.jobs.cron_lease(app.crons[0].schedule, tick, 10)).claimed
        clock.advance(10)
        assert await Scheduler(app, client, lease=10).tick() == 1  # taken over
        assert await Scheduler(app, client, lease=10).tick() == 0
    finally:
        await client.close()


class _OlderServer:
    """The jobs operations of a server from before leases: POST /v1/cron/claim refuses
    the unknown field (422 invalid_input naming it), as its strict models do."""

    def __init__(self, broker: Broker) -> None:
        self.jobs = self
        self._broker = broker

    async def cron_lease(self, schedule: str, tick_at: int, lease_seconds: float
                         ) -> CronLease:
        raise InvalidInput("Extra inputs are not permitted.", field="lease_seconds")

    async def cron_claim(self, schedule: str, tick_at: int) -> bool:
        return await self._broker.jobs.cron_claim(schedule, tick_at)


async def test_a_scheduler_on_an_older_server_claims_as_before(
        broker: Broker, clock: ManualClock) -> None:
    app = _minutely(broker, clock)

    older = _OlderServer(broker)
    schedulers = [Scheduler(app, older, lease=10) for _ in range(2)]  # type: ignore[arg-type]
    assert [await s.tick() for s in schedulers] == [1, 0]
    clock.advance(60)
    assert [await s.tick() for s in schedulers] == [1, 0]
    assert len(await broker.receive("minutely", 10)) == 2


@pytest.mark.parametrize(("lease", "field"), [(0, "lease_seconds"), (61, "lease_seconds"),
                                              (float("nan"), "lease_seconds")])
async def test_lease_checks_its_input(sqlite_broker: Broker, lease: float,
                                      field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        await sqlite_broker.jobs.cron_lease("s", 1, lease)
    assert info.value.field == field


def _digest(schedule: str) -> str:
    return hashlib.sha1(schedule.encode()).hexdigest()[:20]
