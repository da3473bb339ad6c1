"""Transactional enqueue from the App: a job (and its tracked status) exists only if the
application's transaction commits; from async code (asyncpg) and sync code (psycopg)."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg
import pytest

from conveyor.broker.broker import Broker
from conveyor.client.async_client import AsyncClient
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput, Unsupported
from conveyor.worker import App, Worker, WorkerOptions
from tests.worker.helpers import eventually, running


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_job_runs_only_if_its_transaction_commits(
        broker: Broker, clock: ManualClock, postgres_url: str) -> None:
    app = App(clock=clock)
    app.use(broker)
    welcomed: list[int] = []

    @app.task(queue="welcome", track=True)
    async def welcome(user_id: int) -> None:
        welcomed.append(user_id)

    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE TABLE users (id int PRIMARY KEY)")
        async with conn.transaction():
            await conn.execute("INSERT INTO users VALUES (1)")
            kept = await welcome.aenqueue_with((1,), connection=conn)
        with pytest.raises(RuntimeError, match="signup failed"):
            async with conn.transaction():
                await conn.execute("INSERT INTO users VALUES (2)")
                lost = await welcome.aenqueue_with((2,), connection=conn)
                raise RuntimeError("signup failed")
    finally:
        await conn.close()

    assert (await app.job_status(kept.id)).status == "queued"  # type: ignore[union-attr]
    assert await app.job_status(lost.id) is None
    worker = Worker(app, WorkerOptions(wait_seconds=0))
    async with running(worker):
        await eventually(lambda: welcomed == [1], what="the committed job")
        await eventually(lambda: _succeeded(app, kept.id), what="its status")
    assert welcomed == [1]
    assert (await broker.queue_stats("welcome")).visible == 0


async def _succeeded(app: App, job_id: str) -> bool:
    status = await app.job_status(job_id)
    return status is not None and status.status == "succeeded"


async def test_sync_code_enqueues_on_a_psycopg_connection(postgres_url: str) -> None:
    async_conn = await asyncpg.connect(postgres_url)

    def signup() -> tuple[str, str]:
        app = App(postgres_url)

        @app.task(queue="mail", track=True)
        def mail(user_id: int) -> None: ...

        try:
            with psycopg.connect(postgres_url) as conn:
                with conn.transaction():
                    kept = mail.enqueue_with((1,), connection=conn)
                with pytest.raises(ZeroDivisionError), conn.transaction():
                    lost = mail.enqueue_with((2,), connection=conn)
                    _ = 1 / 0
                with pytest.raises(InvalidInput, match="psycopg Connection"):
                    mail.enqueue_with((3,), connection=async_conn)
            return kept.id, lost.id
        finally:
            app.close()

    try:
        kept, lost = await asyncio.to_thread(signup)
    finally:
        await async_conn.close()
    app = App(postgres_url)
    try:
        assert (await app.job_status(kept)).status == "queued"  # type: ignore[union-attr]
        assert await app.job_status(lost) is None
        source = await app.source()
        got = await source.receive("mail", 10, wait_seconds=0)
        assert [m.id for m in got] == [kept]
    finally:
        await app.aclose()


async def test_an_app_on_a_server_url_refuses_a_connection(postgres_url: str) -> None:
    app = App("http://127.0.0.1:9")
    app.use(AsyncClient("http://127.0.0.1:9"))

    @app.task(queue="q")
    async def noop() -> None: ...

    conn = await asyncpg.connect(postgres_url)
    try:
        with pytest.raises(Unsupported, match="postgresql://"):
            await noop.aenqueue_with(connection=conn)
    finally:
        await conn.close()
