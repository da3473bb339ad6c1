"""Unique and debounced tasks, on both backends: in-process, through a server, and from two
processes racing for one key."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.broker.broker import Broker
from conveyor.client.async_client import AsyncClient
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput
from conveyor.worker import App, Cancel, Unique, Worker, WorkerOptions
from tests.http.server import ServerProcess, start_server
from tests.worker.helpers import eventually, running

ROOT = Path(__file__).resolve().parents[2]


def make_app(broker: Broker, clock: ManualClock) -> App:
    app = App(clock=clock)
    app.use(broker)
    return app


async def visible(broker: Broker, queue: str) -> int:
    stats = await broker.queue_stats(queue)
    return stats.visible + stats.delayed


async def test_a_duplicate_returns_the_existing_job_and_changes_nothing(
        broker: Broker, clock: ManualClock) -> None:
    app = make_app(broker, clock)

    @app.task(queue="u", unique=True, track=True)
    async def report(day: str, *, region: str = "eu") -> None: ...

    first = await report.aenqueue("mon")
    again = await report.aenqueue("mon")
    other = await report.aenqueue("mon", region="us")
    assert not first.duplicate and again.duplicate and again.id == first.id
    assert not other.duplicate and other.id != first.id
    assert await visible(broker, "u") == 2
    many = await report.aenqueue_many([(("tue",), {}), (("tue",), {}), (("mon",), {})])
    assert [j.duplicate for j in many] == [False, True, True]
    assert many[1].id == many[0].id and many[2].id == first.id
    status = await app.job_status(first.id)
    assert status is not None and status.status == "queued"


async def test_unique_by_key_function_and_by_period(broker: Broker,
                                                    clock: ManualClock) -> None:
    app = make_app(broker, clock)

    @app.task(queue="u", unique=Unique(key=lambda user, **_: str(user), by_period=60))
    async def digest(user: int, note: str = "") -> None: ...

    clock.advance(61 - clock() / 1000 % 60)  # one second into a minute
    first = await digest.aenqueue(7, note="a")
    clock.advance(50)
    assert (await digest.aenqueue(7, note="b")).id == first.id  # same key, same minute
    clock.advance(10)  # the next minute: a new period
    second = await digest.aenqueue(7, note="c")
    assert not second.duplicate and second.id != first.id
    assert not (await digest.aenqueue(8)).duplicate


async def test_by_args_false_allows_one_job_of_the_task(broker: Broker,
                                                        clock: ManualClock) -> None:
    app = make_app(broker, clock)

    @app.task(queue="u", unique=Unique(by_args=False))
    async def rebuild(what: str) -> None: ...

    first = await rebuild.aenqueue("a")
    assert (await rebuild.aenqueue("b")).id == first.id


def test_bad_unique_options_are_refused() -> None:
    with pytest.raises(InvalidInput, match="by_state"):
        Unique(by_state=frozenset({"queued"}))
    with pytest.raises(InvalidInput, match="by_period"):
        Unique(by_period=0.5)
    app = App()
    with pytest.raises(InvalidInput, match="not both"):
        app.task(unique=True, debounce=5)(lambda: None)
    with pytest.raises(InvalidInput, match="debounce"):
        app.task(debounce=0)(lambda: None)


async def test_a_job_ending_outside_by_state_frees_its_key(broker: Broker,
                                                           clock: ManualClock) -> None:
    app = make_app(broker, clock)
    runs: list[str] = []

    @app.task(queue="u", unique=True, max_retries=0)
    async def step(what: str) -> None:
        runs.append(what)
        if what == "cancel":
            raise Cancel("no")
        if what == "fail":
            raise RuntimeError("boom")

    ok = await step.aenqueue("ok")
    cancelled = await step.aenqueue("cancel")
    failed = await step.aenqueue("fail")
    worker = Worker(app, WorkerOptions(wait_seconds=0))
    async with running(worker):
        await eventually(lambda: len(runs) == 3, what="three runs")
        await eventually(lambda: _dead_lettered(broker), what="the dead letter")

        async def freed() -> bool:
            return not (await step.aenqueue("cancel")).duplicate

        await eventually(freed, what="the cancelled job's key freed")
        again = await step.aenqueue("fail")
        assert not again.duplicate and again.id != failed.id
    # succeeded is in the default by_state: the key stays held until it lapses
    held = await step.aenqueue("ok")
    assert held.duplicate and held.id == ok.id and cancelled.id != held.id


async def _dead_lettered(broker: Broker) -> bool:
    return (await broker.queue_stats("u-dlq")).visible == 1


async def test_debounce_runs_once_with_the_last_arguments(broker: Broker,
                                                          clock: ManualClock) -> None:
    app = make_app(broker, clock)
    seen: list[Any] = []

    @app.task(queue="d", debounce=1, debounce_key=lambda doc, version: doc)
    async def index(doc: str, version: int) -> None:
        seen.append((doc, version))

    jobs = [await index.aenqueue("a", v) for v in range(3)]
    other = await index.aenqueue("b", 0)
    assert [j.duplicate for j in jobs] == [False, True, True]
    assert len({j.id for j in jobs}) == 1 and other.id != jobs[0].id
    [peeked, _] = sorted(await broker.peek("d"), key=lambda p: p.id != jobs[0].id)
    assert peeked.body.value()["args"] == ["a", 2]
    with pytest.raises(InvalidInput, match="window"):
        await index.aenqueue_with(("a", 3), delay=5)
    clock.advance(0.5)
    assert (await index.aenqueue("a", 3)).id == jobs[0].id  # the window starts again
    clock.advance(0.9)  # "b" is due, "a" is not
    assert (await broker.queue_stats("d")).visible == 1
    clock.advance(0.2)
    worker = Worker(app, WorkerOptions(wait_seconds=0))
    async with running(worker):
        await eventually(lambda: len(seen) == 2, what="two runs")
        await eventually(lambda: _total(broker, "d"), what="acks")
    assert sorted(seen) == [("a", 3), ("b", 0)]
    # After it ran, the next enqueue is a new job.
    assert not (await index.aenqueue("a", 4)).duplicate


async def _total(broker: Broker, queue: str) -> bool:
    return (await broker.queue_stats(queue)).total == 0


# through a server -------------------------------------------------------------------
@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = start_server(tmp_path, ["--database", database_url, "--no-sqs"])
    try:
        yield process
    finally:
        process.stop()


async def test_unique_and_debounce_through_the_http_api(server: ServerProcess) -> None:
    client = AsyncClient(server.url)
    app = App()
    app.use(client)
    try:
        @app.task(queue="hu", unique=True)
        async def report(day: str) -> None: ...

        @app.task(queue="hd", debounce=1)
        async def index(doc: str) -> None: ...

        first = await report.aenqueue("mon")
        again = await report.aenqueue("mon")
        assert again.duplicate and again.id == first.id
        key = report.call(("mon",), {}).claim
        assert key is not None
        assert await client.jobs.claim_release(key.key, first.id)
        assert not await client.jobs.claim_release(key.key, first.id)
        assert not (await report.aenqueue("mon")).duplicate
        d1 = await index.aenqueue("x")
        d2 = await index.aenqueue("y")
        assert d2.duplicate and d2.id == d1.id
        assert (await client.queue_stats("hd")).delayed == 1
        [got] = await client.receive("hd", 10, wait_seconds=5)
        assert got.id == d1.id and got.body.value()["args"] == ["y"]
    finally:
        await client.close()


# two processes ----------------------------------------------------------------------
def test_two_processes_racing_for_one_key_store_one_job(database_url: str) -> None:
    start_at = time.time() + 4
    commands = [[sys.executable, "-m", "tests.unique.enqueuer", database_url,
                 str(start_at), "20"] for _ in range(2)]
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for c in commands]
    outputs = [p.communicate(timeout=60) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err.decode()[-2000:]
    rows = [line.split() for out, _ in outputs for line in out.decode().splitlines()]
    assert len(rows) == 80
    assert len({job_id for job_id, _ in rows}) == 1
    assert sum(dup == "0" for _, dup in rows) == 1
