"""Cancelling jobs on both backends: in-process (`broker.jobs.cancel`), over HTTP (one, in
bulk, the workers' check), with the worker in the test's loop, and the CLI."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput, JobNotCancellable, JobNotFound
from conveyor.http.auth import Need, required
from conveyor.jobs import JobFilter
from conveyor.worker import App, Worker, WorkerOptions, current_job
from tests.cli.conftest import run_conveyor
from tests.http.helpers import assert_error
from tests.http.server import ServerProcess
from tests.worker.helpers import eventually, running


def tracked_app(broker: Broker, clock: ManualClock) -> App:
    app = App(clock=clock, visibility_timeout=30)
    app.use(broker)
    return app


async def _status(app: App, job_id: str) -> str | None:
    found = await app.job_status(job_id)
    return None if found is None else found.status


async def test_a_queued_job_is_deleted_and_never_runs(broker: Broker,
                                                      clock: ManualClock) -> None:
    app = tracked_app(broker, clock)
    runs: list[int] = []

    @app.task(queue="work", track=True)
    async def job(n: int) -> None:
        runs.append(n)

    first, second = await job.aenqueue(1), await job.aenqueue(2)
    later = await job.aenqueue_with((3,), delay=600)
    assert (await broker.jobs.cancel(first.id)).status == "cancelled"
    assert await later.cancel() == "cancelled"  # a delayed one too
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: _is(app, second.id, "succeeded"), what="the other one ran")
    assert runs == [2]
    assert (await broker.queue_stats("work")).total == 0
    cancelled = await broker.jobs.status_get(first.id)
    assert cancelled is not None and cancelled.error == "Cancelled before it ran."
    with pytest.raises(JobNotCancellable) as caught:  # ended: nothing changes
        await broker.jobs.cancel(second.id)
    assert caught.value.code == "job_not_cancellable"
    assert await _status(app, second.id) == "succeeded"
    with pytest.raises(JobNotFound):
        await broker.jobs.cancel("no-such-job")


async def test_running_async_and_sync_jobs_are_stopped(broker: Broker,
                                                       clock: ManualClock) -> None:
    app = tracked_app(broker, clock)
    events: list[str] = []
    began = asyncio.Event()
    sync_began = threading.Event()

    @app.task(queue="a", track=True)
    async def waits() -> None:
        began.set()
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            events.append("async cancelled")
            raise

    @app.task(queue="s", track=True)
    def steps() -> None:
        job = current_job()
        assert job is not None
        sync_began.set()
        while not job.cancelled:
            threading.Event().wait(0.01)
        events.append("sync saw the flag")
        job.raise_if_cancelled()

    a, s = await waits.aenqueue(), await steps.aenqueue()
    options = WorkerOptions(wait_seconds=0, cancel_interval=0.05, shutdown_grace=1)
    async with running(Worker(app, options)):
        await eventually(began.is_set, what="async job running")
        await eventually(sync_began.is_set, what="sync job running")
        assert (await broker.jobs.cancel(a.id)).status in ("queued", "running")
        assert (await broker.jobs.cancel(s.id)).status in ("queued", "running")
        for job_id in (a.id, s.id):
            await eventually(lambda job_id=job_id: _is(app, job_id, "cancelled"),  # type: ignore[misc]
                             what="cancelled")
    assert sorted(events) == ["async cancelled", "sync saw the flag"]
    assert (await broker.queue_stats("a")).total == 0  # acknowledged, not retried


async def test_over_http_one_in_bulk_and_the_check(http: httpx.AsyncClient,
                                                   broker: Broker) -> None:
    for i in range(3):
        await broker.jobs.status_set(f"q{i}", "queued", queue="bulk", task="t")
    await broker.jobs.status_set("done", "succeeded", queue="bulk", task="t", attempts=1)
    one = await http.post("/v1/jobs/q0/cancel")
    # No message under a non-UUID id: the request stays for a worker (202).
    assert one.status_code == 202 and one.json()["status"] == "queued"
    assert_error(await http.post("/v1/jobs/done/cancel"), 409, "job_not_cancellable")
    assert_error(await http.post("/v1/jobs/nope/cancel"), 404, "job_not_found")
    found = await http.post("/v1/jobs/cancel-requests", json={"job_ids": ["q0", "q1"]})
    assert found.json() == {"job_ids": ["q0"]}
    bulk = await http.post("/v1/jobs/cancel", json={"queue": "bulk", "limit": 2})
    body = bulk.json()
    assert bulk.status_code == 200 and len(body["cancelled"]) == 2 and body["next"]
    rest = (await http.post("/v1/jobs/cancel", json={"queue": "bulk",
                                                      "after": body["next"]})).json()
    assert len(rest["cancelled"]) == 1 and rest["next"] is None
    checked = await http.post("/v1/jobs/cancel-requests",
                              json={"job_ids": ["q0", "q1", "q2", "done"]})
    assert sorted(checked.json()["job_ids"]) == ["q0", "q1", "q2"]
    assert_error(await http.post("/v1/jobs/cancel", json={"state": "dead"}), 422,
                 "invalid_input", field="state")
    assert_error(await http.post("/v1/jobs/cancel-requests", json={"job_ids": [""]}), 422,
                 "invalid_input", field="job_id")


async def test_bulk_state_must_be_cancellable(broker: Broker) -> None:
    with pytest.raises(InvalidInput):
        await broker.jobs.cancel_many(JobFilter(state="succeeded"))


def test_cancel_needs_manage_and_the_check_receive() -> None:
    assert required("POST", "/v1/jobs/abc/cancel") == Need("manage")
    assert required("POST", "/v1/jobs/cancel") == Need("manage")
    assert required("POST", "/v1/jobs/cancel-requests") == Need("receive")


def test_cli_cancels_one_and_by_filter(sqlite_server: ServerProcess) -> None:
    url = sqlite_server.url
    # Reported over HTTP, so under job ids (UUIDs); no message carries them.
    c0, ok = (f"01900000-0000-7000-8000-0000000000c{i}" for i in (0, 9))
    for i in range(3):
        httpx.put(f"{url}/v1/jobs/01900000-0000-7000-8000-0000000000c{i}", json={
            "status": "queued", "queue": "cli", "task": "t"}).raise_for_status()
    httpx.put(f"{url}/v1/jobs/{ok}", json={"status": "succeeded", "queue": "cli",
                                           "task": "t", "attempts": 1}).raise_for_status()
    env = {"CONVEYOR_URL": url}
    one = run_conveyor("job", "cancel", c0, env=env)
    assert f"{c0}: queued; its worker cancels it at its next check" in one.stdout
    ended = run_conveyor("job", "cancel", ok, env=env)
    assert ended.returncode == 1 and "job_not_cancellable" in ended.stderr
    bulk = run_conveyor("job", "cancel", "--queue", "cli", "--state", "queued", env=env)
    assert "cancelled 3 jobs" in bulk.stdout


async def _is(app: App, job_id: str, status: str) -> bool:
    return await _status(app, job_id) == status
