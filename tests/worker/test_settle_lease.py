"""A tracked job's lease is kept while its status write (and then its acknowledgement)
waits: a slow write must not let the lease lapse and the job run twice. Both backends."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.worker import App, Worker, WorkerOptions
from tests.worker.helpers import eventually, running
from tests.worker.test_settle_order import hold_status


async def test_a_slow_status_write_keeps_the_lease(
        broker: Broker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    app = App(clock=clock, visibility_timeout=3)  # a heartbeat every second
    app.use(broker)
    runs: list[int] = []

    @app.task(queue="work", track=True)
    async def quick() -> None:
        runs.append(len(runs) + 1)

    held_up, release = hold_status(broker, monkeypatch, "succeeded")
    job = await quick.aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        try:
            await asyncio.wait_for(held_up.wait(), 10)
            # 3.6 s of the database's clock, past the 3-s lease, in steps no heartbeat
            # misses twice (the first may pass over a job received just before it).
            for _ in range(3):
                clock.advance(1.2)
                await asyncio.sleep(1.2)
                assert runs == [1], "the lease lapsed while the status was written"
                stats = await broker.queue_stats("work")
                assert (stats.in_flight, stats.visible) == (1, 0)
        finally:
            release.set()
        await eventually(lambda: _empty(broker), what="the acknowledgement")
    assert runs == [1]
    status = await app.job_status(job.id)
    assert status is not None and (status.status, status.attempts) == ("succeeded", 1)


async def _empty(broker: Broker) -> bool:
    return (await broker.queue_stats("work")).total == 0
