"""Cancelling a queued job of a flow tells the flow, on both backends: the node ends
(failed, "Cancelled before it ran.") in the transaction that deletes its message, and the
child's on_failure decides what its parent does (fail: fails now; ignore: runs with None
in its place once the others end; continue: runs now). The same through one cancel
in-process, the bulk cancel over HTTP and the CLI against a server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.http.app import create_app
from conveyor.worker import App, Worker, WorkerOptions
from conveyor.worker.canvas import FlowRun
from tests.cli.conftest import run_conveyor
from tests.http.server import start_server
from tests.worker.helpers import eventually, running


def make_app(app: App) -> dict[str, list[Any]]:
    calls: dict[str, list[Any]] = {"child": [], "parent": []}

    @app.task(queue="kids", track=True)
    def child(i: int) -> int:
        calls["child"].append(i)
        return i

    @app.task(queue="parents", track=True)
    def parent(values: list[int | None]) -> str:
        calls["parent"].append(values)
        return "parent ran"

    return calls


def family(app: App, policy: str, second: str = "fail") -> Any:
    child, parent = app.tasks["child"], app.tasks["parent"]
    return app.flow(parent.s(), children=[child.s(1).set(on_failure=policy),
                                          child.s(2).set(on_failure=second)])


@pytest.fixture
async def http(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


async def _states(run: FlowRun) -> list[str]:
    return [n.state for n in (await run.tree()).nodes]


async def test_cancel_fails_the_parent_under_fail(broker: Broker, clock: ManualClock) -> None:
    app = App(clock=clock)
    app.use(broker)
    calls = make_app(app)
    run = await family(app, "fail").aenqueue()
    first = run.job_ids[0]
    assert (await broker.jobs.cancel(first)).status == "cancelled"
    tree = await run.tree()
    # Recorded with the cancel, before any worker: the parent failed and will never run.
    assert [n.state for n in tree.nodes] == ["failed", "queued", "failed"]
    assert tree.nodes[0].error == "Cancelled before it ran."
    assert "step 0 failed: Cancelled before it ran." in (tree.nodes[2].error or "")
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: calls["child"] == [2], what="the other child ran")
        await eventually(lambda: _settled(broker, "kids"), what="kids acknowledged")
    assert calls["parent"] == []
    assert (await broker.queue_stats("parents")).total == 0
    assert await _states(run) == ["failed", "succeeded", "failed"]


async def test_bulk_cancel_over_http_lets_ignore_run_the_parent(
        broker: Broker, clock: ManualClock, http: httpx.AsyncClient) -> None:
    app = App(clock=clock)
    app.use(broker)
    calls = make_app(app)
    runs = [await family(app, "ignore", "ignore").aenqueue() for _ in range(2)]
    # Every child of both flows by one filter (the kids queue): each node ends with its
    # cancel; under ignore each parent is sent once its last child has ended.
    bulk = await http.post("/v1/jobs/cancel", json={"queue": "kids", "limit": 10})
    assert bulk.status_code == 200, bulk.text
    cancelled = {j["job_id"] for j in bulk.json()["cancelled"]}
    assert cancelled == {i for r in runs for i in r.job_ids[:2]}
    for run in runs:
        nodes = (await run.tree()).nodes
        assert [n.state for n in nodes] == ["failed", "failed", "queued"]
        assert nodes[0].error == "Cancelled before it ran."
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: len(calls["parent"]) == 2, what="both parents ran")
    assert calls["child"] == []
    assert calls["parent"] == [[None, None], [None, None]]
    for run in runs:
        assert await _states(run) == ["failed", "failed", "succeeded"]


async def test_cancel_under_ignore_waits_for_the_others(broker: Broker,
                                                         clock: ManualClock) -> None:
    app = App(clock=clock)
    app.use(broker)
    calls = make_app(app)
    run = await family(app, "ignore").aenqueue()
    await broker.jobs.cancel(run.job_ids[0])
    nodes = (await run.tree()).nodes
    assert [n.state for n in nodes] == ["failed", "queued", "waiting"]
    assert nodes[2].pending == 1
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: calls["parent"] == [[None, 2]], what="the parent ran")
    assert await _states(run) == ["failed", "succeeded", "succeeded"]


def test_cli_cancel_under_continue_sends_the_parent_now(database_url: str,
                                                        tmp_path: Path) -> None:
    server = start_server(tmp_path, ["--database", database_url, "--no-sqs"])
    app = App(database_url)
    try:
        make_app(app)
        run = app.enqueue_flow(family(app, "continue"))
        done = run_conveyor("job", "cancel", run.job_ids[0], env={"CONVEYOR_URL": server.url})
        assert done.returncode == 0, done.stderr
        assert "cancelled" in done.stdout
        nodes = app._sync(run.tree()).nodes
        # continue: the parent is sent at once, without waiting for its other child
        assert [n.state for n in nodes] == ["failed", "queued", "queued"]
        stats = httpx.get(f"{server.url}/v1/queues/parents").json()["stats"]
        assert stats["visible"] == 1, stats
    finally:
        app.close()
        server.stop()


async def _settled(broker: Broker, queue: str) -> bool:
    return (await broker.queue_stats(queue)).total == 0
