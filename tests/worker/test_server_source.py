"""A worker whose source is a conveyor server long-polls: an idle worker makes one receive
request per queue per long poll, not one a second, and still runs a job as it arrives."""

from __future__ import annotations

import asyncio
import time

from conveyor.client.async_client import AsyncClient
from conveyor.models import Message
from conveyor.worker import App, Worker
from conveyor.worker.runner import SERVER_LONG_POLL
from tests.http.server import ServerProcess
from tests.worker.helpers import eventually, running


class CountingClient(AsyncClient):
    """An AsyncClient that counts its receive requests."""

    receives = 0

    async def receive(self, queue_name: str, max_messages: int = 10,
                      visibility_timeout: int | None = None,
                      wait_seconds: int | None = None) -> list[Message]:
        self.receives += 1
        return await super().receive(queue_name, max_messages, visibility_timeout,
                                     wait_seconds)


async def test_an_idle_worker_long_polls_and_wakes_on_arrival(sqlite_server: ServerProcess) -> None:
    client = CountingClient(sqlite_server.url)
    app = App()
    app.use(client)
    done: list[int] = []

    @app.task(queue="idle-work")
    async def job(n: int) -> None:
        done.append(n)

    worker = Worker(app)
    async with running(worker):
        await eventually(lambda: client.receives >= 1, what="the first receive")
        await asyncio.sleep(2.0)  # idle: still inside the first long poll
        assert client.receives == 1, f"{client.receives} receives in 2 s of idling"
        started = time.monotonic()
        await job.aenqueue(7)
        await eventually(lambda: done == [7], timeout=5, what="the job")
        assert time.monotonic() - started < SERVER_LONG_POLL / 4
        stopping = time.monotonic()
        worker.stop()
    # Shutdown does not wait out the long poll the worker was in.
    assert time.monotonic() - stopping < 5
    await client.close()
