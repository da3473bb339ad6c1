"""Snooze: a job that raises `Snooze(seconds)` comes back later without spending an attempt
(in-process on both backends, and the retry route's `snooze` through a server)."""

from __future__ import annotations

from conveyor.broker.broker import Broker
from conveyor.client.async_client import AsyncClient
from conveyor.clock import ManualClock
from conveyor.models import Body, SendEntry
from conveyor.worker import App, Snooze, Worker, WorkerOptions
from tests.http.server import ServerProcess
from tests.worker.helpers import eventually, running


async def test_a_snoozed_job_comes_back_without_spending_an_attempt(
        broker: Broker, clock: ManualClock) -> None:
    app = App(clock=clock)
    app.use(broker)
    attempts: list[int] = []

    @app.task(queue="s", max_retries=0, keep_result=60)
    async def poll() -> str:
        attempts.append(len(attempts))
        if len(attempts) < 4:  # max_retries=0: a failure would dead-letter it at once
            raise Snooze(30)
        return "ready"

    job = await poll.aenqueue()
    worker = Worker(app, WorkerOptions(wait_seconds=0))
    async with running(worker):
        for runs in range(1, 4):
            await eventually(lambda r=runs: len(attempts) == r, what=f"run {runs}")
            await eventually(lambda: _delayed(broker), what="the snooze")
            [peeked] = await broker.peek("s")
            assert peeked.receive_count == 0 and peeked.last_error == "snoozed for 30 s"
            assert peeked.visible_at >= clock() + 29_000
            clock.advance(31)
        assert await job.result(timeout=10) == "ready"
    status = await app.job_status(job.id)
    assert status is not None and status.attempts == 1
    assert (await broker.queue_stats("s-dlq")).visible == 0


async def _delayed(broker: Broker) -> bool:
    return (await broker.queue_stats("s")).delayed == 1


async def test_the_retry_route_gives_the_receive_back(sqlite_server: ServerProcess) -> None:
    async with AsyncClient(sqlite_server.url) as client:
        await client.create_queue("q")
        await client.send("q", [SendEntry(Body.of("x"))])
        for _ in range(3):
            [got] = await client.receive("q", 1, wait_seconds=5)
            assert got.receive_count == 1
            result = await client.retry("q", got.receipt_handle, 0, "later", snooze=True)
            assert result.status == "ok"
        [got] = await client.receive("q", 1, wait_seconds=5)
        await client.retry("q", got.receipt_handle, 0, "failed")
        [got] = await client.receive("q", 1, wait_seconds=5)
        assert got.receive_count == 2  # a plain retry keeps the count
