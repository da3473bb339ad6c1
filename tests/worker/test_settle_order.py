"""A tracked job's message is acknowledged (deleted) only once its outcome is recorded: a
worker killed between the two must leave the message to come back, never a deleted job
whose status says `running` for good. Both backends; the batcher's part on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.worker import App, Cancel, Worker, WorkerOptions
from conveyor.worker.batching import Batcher
from tests.worker.helpers import eventually, running


def make_app(broker: Broker, clock: ManualClock) -> App:
    app = App(clock=clock, visibility_timeout=30)
    app.use(broker)
    return app


async def test_an_item_is_told_only_once_its_batch_is_written() -> None:
    gate = asyncio.Event()
    written: list[list[int]] = []
    told: list[tuple[int, bool]] = []

    async def flush(items: Sequence[int]) -> None:
        await gate.wait()
        if 13 in items:
            raise RuntimeError("the database went away")
        written.append(list(items))

    batcher: Batcher[int] = Batcher(flush, size=2, interval=0.01, ordered=True)
    batcher.add(1, lambda ok: told.append((1, ok)))
    batcher.add(2)  # full: this batch is being written
    batcher.add(13, lambda ok: told.append((13, ok)))
    batcher.add(4, lambda ok: told.append((4, ok)))  # behind it, one flush at a time
    await asyncio.sleep(0.05)
    assert told == []  # nothing is written yet, so nobody hears back
    gate.set()
    await batcher.drain()
    assert written == [[1, 2]]
    assert told == [(1, True), (13, False), (4, False)]  # a failed write says so


async def test_a_cancelled_flush_tells_its_items_they_were_not_written() -> None:
    told: list[bool] = []

    async def flush(items: Sequence[int]) -> None:
        await asyncio.sleep(10)

    batcher: Batcher[int] = Batcher(flush, size=1)
    batcher.add(1, told.append)
    await asyncio.sleep(0.01)
    for task in list(batcher._pending):
        task.cancel()
    await asyncio.gather(*batcher._pending, return_exceptions=True)
    assert told == [False]


def hold_status(broker: Broker, monkeypatch: pytest.MonkeyPatch, status: str
                ) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold up the write of a batch holding a `status` (the worker could be killed there)
    until `release` is set; `held_up` is set once one is held."""
    write = broker.jobs.status_set_many
    held_up, release = asyncio.Event(), asyncio.Event()

    async def slow_end(items: Sequence[Any], **kwargs: Any) -> None:
        if any(s.status == status for s in items):
            held_up.set()
            await release.wait()
        await write(items, **kwargs)

    monkeypatch.setattr(broker.jobs, "status_set_many", slow_end)
    return held_up, release


async def test_a_success_is_acknowledged_only_after_its_status_is_written(
        broker: Broker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(broker, clock)

    @app.task(queue="work", track=True, keep_result=60)
    async def quick() -> int:
        return 7

    held_up, release = hold_status(broker, monkeypatch, "succeeded")
    job = await quick.aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        try:
            await asyncio.wait_for(held_up.wait(), 10)
            await asyncio.sleep(0.3)  # 15 times the acknowledgements' batch interval
            assert (await broker.queue_stats("work")).in_flight == 1  # not acknowledged
        finally:
            release.set()  # (else the worker's shutdown waits for the write)
        await eventually(lambda: _empty(broker, "work"), what="the acknowledgement")
    status = await app.job_status(job.id)
    assert status is not None and (status.status, status.result) == ("succeeded", 7)


async def test_a_job_whose_end_was_not_recorded_comes_back(
        broker: Broker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(broker, clock)
    runs: list[int] = []

    @app.task(queue="work", track=True)
    async def quick() -> None:
        runs.append(len(runs) + 1)

    write = broker.jobs.status_set_many
    failed: list[int] = []

    async def failing_once(items: Sequence[Any], **kwargs: Any) -> None:
        if not failed and any(s.status == "succeeded" for s in items):
            failed.append(len(items))
            raise ConnectionError("the database server restarted")
        await write(items, **kwargs)

    monkeypatch.setattr(broker.jobs, "status_set_many", failing_once)
    job = await quick.aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: bool(failed), what="the failed status write")
        await asyncio.sleep(0.2)
        assert (await broker.queue_stats("work")).in_flight == 1  # kept, not deleted
        clock.advance(31)  # its lease lapses: it comes back and runs again
        await eventually(lambda: _empty(broker, "work"), what="the second run's ack")
    assert runs == [1, 2]
    status = await app.job_status(job.id)
    assert status is not None and (status.status, status.attempts) == ("succeeded", 2)


@pytest.mark.parametrize("outcome", ["cancelled", "dead"])
async def test_a_cancel_or_a_dead_letter_waits_for_its_status(
        broker: Broker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
        outcome: str) -> None:
    app = make_app(broker, clock)

    @app.task(queue="work", track=True, max_retries=0)
    async def ends() -> None:
        raise Cancel("no") if outcome == "cancelled" else RuntimeError("no")

    held_up, release = hold_status(broker, monkeypatch, outcome)
    job = await ends.aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        try:
            await asyncio.wait_for(held_up.wait(), 10)
            await asyncio.sleep(0.3)
            stats = await broker.queue_stats("work")
            assert (stats.in_flight, stats.dead_letters) == (1, 0)  # not acked nor moved
        finally:
            release.set()
        await eventually(lambda: _settled(broker), what="the settlement")
    status = await app.job_status(job.id)
    assert status is not None and status.status == outcome


async def _empty(broker: Broker, queue: str) -> bool:
    return (await broker.queue_stats(queue)).total == 0


async def _settled(broker: Broker) -> bool:
    stats = await broker.queue_stats("work")
    return stats.in_flight == 0 and stats.visible == 0
