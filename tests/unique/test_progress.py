"""Progress reports from a running job, on its status (both backends; through a server)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from conveyor.broker.broker import Broker
from conveyor.client.async_client import AsyncClient
from conveyor.jobs import JobStatus
from conveyor.worker import App, Worker, WorkerOptions, current_job, progress
from tests.http.server import ServerProcess
from tests.worker.helpers import eventually, running


def register(app: App, gate: threading.Event) -> None:
    @app.task(queue="p", keep_result=60)
    async def crunch(n: int) -> int:
        progress({"done": 0, "of": n})
        await asyncio.to_thread(gate.wait, 10)
        job = current_job()
        assert job is not None and job.attempt == 1
        job.progress({"done": n, "of": n})
        return n

    @app.task(queue="p")
    async def plain() -> None:
        assert current_job() is None  # untracked: no context, no cost
        progress("ignored")

    @app.task(queue="p", track=True)
    def crunch_sync(n: int) -> None:
        progress(f"step 1 of {n}")  # from the worker's thread
        gate.wait(10)


async def _progress(get: Any, job_id: str, want: Any) -> bool:
    status: JobStatus | None = await get(job_id)
    return status is not None and status.progress == want


async def test_progress_reports_land_on_the_status(broker: Broker) -> None:
    app = App()
    app.use(broker)
    gate = threading.Event()
    register(app, gate)
    job = await app.tasks["crunch"].aenqueue(3)
    sync_job = await app.tasks["crunch_sync"].aenqueue(2)
    await app.tasks["plain"].aenqueue()
    progress(1)  # outside a job: nothing happens
    assert current_job() is None
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        get = broker.jobs.status_get
        await eventually(lambda: _progress(get, job.id, {"done": 0, "of": 3}), what="report")
        await eventually(lambda: _progress(get, sync_job.id, "step 1 of 2"), what="sync")
        status = await get(job.id)
        assert status is not None and status.status == "running"
        gate.set()
        assert await job.result(timeout=10) == 3
    status = await get(job.id)
    assert status is not None and status.progress == {"done": 3, "of": 3}


async def test_progress_through_the_http_api(sqlite_server: ServerProcess) -> None:
    gate = threading.Event()
    async with AsyncClient(sqlite_server.url) as client:
        app = App()
        app.use(client)
        register(app, gate)
        job = await app.tasks["crunch"].aenqueue(5)
        async with running(Worker(app, WorkerOptions(wait_seconds=1))):
            await eventually(lambda: _progress(client.jobs.status_get, job.id,
                                               {"done": 0, "of": 5}), what="report")
            async with httpx.AsyncClient() as http:
                got = (await http.get(f"{sqlite_server.url}/v1/jobs/{job.id}")).json()
            assert got["status"] == "running" and got["progress"] == {"done": 0, "of": 5}
            gate.set()
            assert await job.result(timeout=10) == 5
