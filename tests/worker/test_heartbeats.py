"""Worker heartbeats in one process: a running Worker is listed with its queues, schedules
and per-task counts, in-process and through the HTTP API alike; a clean stop removes it;
bad heartbeats are refused and change nothing; /metrics sums the counts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.broker.broker import Broker
from conveyor.client import AsyncClient
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput
from conveyor.heartbeats import DURATION_BUCKETS, Heartbeat, TaskCounts
from conveyor.http.app import create_app
from conveyor.worker import App, Worker, WorkerOptions
from tests.conftest import OpenBroker
from tests.worker.helpers import eventually, running


def make_app() -> App:
    app = App()

    @app.task(queue="hb", concurrency=3, max_retries=1, retry_backoff=False, track=True)
    async def maybe(fail: bool) -> None:
        if fail:
            raise RuntimeError("no")

    @app.cron("*/10 * * * * *")
    async def often() -> None:
        pass

    return app


@pytest.fixture
async def served(open_broker: OpenBroker) -> AsyncIterator[tuple[Broker, httpx.AsyncClient]]:
    broker = await open_broker(stats_cache_seconds=0)
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield broker, http


@pytest.mark.parametrize("through", ["broker", "http"])
async def test_a_running_worker_is_listed_with_its_counts(
        served: tuple[Broker, httpx.AsyncClient], through: str) -> None:
    broker, http = served
    app = make_app()
    source = broker if through == "broker" else AsyncClient(
        "http://localhost", transport=http._transport)  # type: ignore[arg-type]
    app.use(source)
    maybe = app.tasks["maybe"]
    await app.send([maybe.call((False,), {}) for _ in range(5)]
                    + [maybe.call((True,), {}) for _ in range(2)])
    worker = Worker(app, WorkerOptions(queues=["hb"], heartbeat_interval=0.05,
                                       wait_seconds=1))

    def counts() -> TaskCounts | None:
        # (the cron task `often` is listed too, at 0 runs: a worker lists every task)
        return next(iter(c for w in listed for c in w.counts if c.task == "maybe"), None)

    listed: list = []
    async with running(worker):
        async def settled() -> bool:
            listed[:] = await broker.workers.list()
            c = counts()
            return c is not None and c.runs == 9  # 5 fine, 2 failed twice each
        await eventually(settled, what="every run counted in a heartbeat")
        [w] = listed
        assert (w.worker_id, w.queues, w.concurrency) == (worker.holder, ("hb",), 3)
        c = counts()
        assert c is not None
        assert (c.queue, c.task, c.runs, c.failures, c.retries) == ("hb", "maybe", 9, 4, 2)
        assert sum(c.buckets) == 9 and len(c.buckets) == len(DURATION_BUCKETS) + 1
        [s] = w.schedules
        assert s.schedule == "*/10 * * * * * (UTC)" and s.task == "often"
        # (the worker's clock: the broker's here is the test's, a month ahead)
        assert s.next_run_at % 10_000 == 0
        assert -2_000 < s.next_run_at - time.time() * 1000 <= 10_000
        # The same through the HTTP API and its client.
        body = (await http.get("/v1/workers")).json()["workers"]
        assert [b["worker_id"] for b in body] == [worker.holder]
        assert {c["task"]: c["failures"] for c in body[0]["counts"]} == {"maybe": 4,
                                                                         "often": 0}
        client = AsyncClient("http://localhost", transport=http._transport)  # type: ignore[arg-type]
        assert [x.worker_id for x in await client.workers.list()] == [worker.holder]
        # /metrics sums the live workers' counts (job statuses are written in batches).
        async def tracked() -> bool:
            found = await broker.jobs.status_counts_by_task()
            return found.get(("hb", "maybe", "dead")) == 2
        await eventually(tracked, what="dead statuses recorded")
        text = (await http.get("/metrics")).text
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        key = (("queue", "hb"), ("task", "maybe"))
        assert samples[("conveyor_task_runs_total", key)] == 9
        assert samples[("conveyor_task_failures_total", key)] == 4
        assert samples[("conveyor_task_retries_total", key)] == 2
        assert samples[("conveyor_task_duration_seconds_count", key)] == 9
        assert samples[("conveyor_workers", ())] == 1
        jobs = {dict(labels)["status"]: v for (name, labels), v in samples.items()
                if name == "conveyor_jobs" and dict(labels)["task"] == "maybe"}
        assert (jobs["dead"], jobs["succeeded"], jobs["queued"]) == (2, 5, 0)
    assert await broker.workers.list() == []  # a clean stop removes it at once
    if through == "http":
        await source.close()  # type: ignore[union-attr]


async def test_expiry_and_sweep(broker: Broker, clock: ManualClock) -> None:
    await broker.workers.beat(Heartbeat("w1", "h", 1, ("q",), 2, 0, 5.0))
    await broker.workers.beat(Heartbeat("w2", "h", 2, ("q",), 2, 1, 60.0))
    clock.advance(5)
    assert [w.worker_id for w in await broker.workers.list()] == ["w2"]
    assert await broker.workers.expire() == 1
    assert await broker.workers.remove("w2") is True
    assert await broker.workers.remove("w2") is False


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("field", "value"), [
    ("ttl_seconds", 0.0), ("ttl_seconds", 10_000), ("queues", ["bad name"]), ("pid", -1),
    ("counts", [{"queue": "q", "task": "t", "buckets": [1, 2]}]),
    ("host", ""), ("running", 1.5)])
async def test_bad_heartbeats_are_refused(served: tuple[Broker, httpx.AsyncClient],
                                          field: str, value: object) -> None:
    broker, http = served
    body = {"host": "h", "pid": 1, "queues": ["q"], "concurrency": 1, "running": 0,
            "ttl_seconds": 5, field: value}
    answer = await http.put("/v1/workers/w1", json=body)
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["error"]["code"]
    assert await broker.workers.list() == []
    assert (await http.delete("/v1/workers/w1")).json()["error"]["code"] == "worker_not_found"
    with pytest.raises(InvalidInput):
        await broker.workers.beat(Heartbeat("", "h", 1, (), 1, 0, 5.0))


def test_documented_and_guarded() -> None:
    """The routes are in the OpenAPI document (/api-docs), and a key needs `receive`."""
    from conveyor.http.auth import Need, required
    from conveyor.http.workers import router

    routes = {(r.path, m) for r in router.routes for m in r.methods}  # type: ignore[attr-defined]
    assert routes == {("/v1/workers", "GET"), ("/v1/workers/{worker_id}", "PUT"),
                      ("/v1/workers/{worker_id}", "DELETE")}
    assert all(r.include_in_schema for r in router.routes)  # type: ignore[attr-defined]
    for method, path in (("GET", "/v1/workers"), ("PUT", "/v1/workers/w1"),
                         ("DELETE", "/v1/workers/w1")):
        assert required(method, path) == Need("receive")
