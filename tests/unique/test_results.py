"""Waiting for a job's result from async and sync code, with its errors, on both backends."""

from __future__ import annotations

import asyncio
import time

import pytest

from conveyor.broker.broker import Broker
from conveyor.client.async_client import AsyncClient
from conveyor.worker import (
    App,
    Cancel,
    JobCancelled,
    JobFailed,
    JobNotTracked,
    JobTimeout,
    Worker,
    WorkerOptions,
)
from tests.http.server import ServerProcess
from tests.worker.helpers import running


def register(app: App) -> None:
    @app.task(queue="r", keep_result=60, max_retries=0)
    async def compute(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        if x == 0:
            raise Cancel("zero")
        await asyncio.sleep(0.2)
        return x * 2

    @app.task(queue="r")
    async def untracked() -> None: ...


async def test_await_a_result_and_each_way_a_job_can_end(broker: Broker) -> None:
    app = App()
    app.use(broker)
    register(app)
    compute, untracked = app.tasks["compute"], app.tasks["untracked"]
    ok = await compute.aenqueue(21)
    with pytest.raises(JobTimeout, match="still queued"):
        await ok.result(timeout=0.1)  # no worker yet
    bad, cancelled = await compute.aenqueue(-1), await compute.aenqueue(0)
    quiet = await untracked.aenqueue()
    with pytest.raises(JobNotTracked):
        await quiet.result(timeout=1)
    worker = Worker(app, WorkerOptions(wait_seconds=0))
    async with running(worker):
        started = time.monotonic()
        assert await ok.result(timeout=10) == 42
        assert time.monotonic() - started < 5
        with pytest.raises(JobFailed, match="negative") as failed:
            await bad.result(timeout=10)
        assert failed.value.status == "dead"
        with pytest.raises(JobCancelled):
            await cancelled.result(timeout=10)
        assert await app.result(ok.id) == 42  # by id, no timeout
    with pytest.raises(RuntimeError, match="blocks"):
        ok.wait(timeout=1)  # sync form inside a running loop


async def test_wait_from_sync_code_through_a_server(sqlite_server: ServerProcess) -> None:
    client = AsyncClient(sqlite_server.url)
    worker_app = App()
    worker_app.use(client)
    register(worker_app)
    producer = App(sqlite_server.url)  # sync code: its own source on its private loop
    register(producer)

    def produce() -> tuple[int, str]:
        job = producer.tasks["compute"].enqueue(5)
        value = job.wait(timeout=15)
        cancelled = producer.tasks["compute"].enqueue(0)
        try:
            cancelled.wait(timeout=15)
        except JobCancelled as exc:
            return value, exc.status
        finally:
            producer.close()
        return value, "no error"

    try:
        async with running(Worker(worker_app, WorkerOptions(wait_seconds=1))):
            # (a cancelled job here, not a dead one: a server that dead-lettered a job
            # takes 20 s to stop on SIGTERM, a separate matter)
            assert await asyncio.to_thread(produce) == (10, "cancelled")
    finally:
        await client.close()
