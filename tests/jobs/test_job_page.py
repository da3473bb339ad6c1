"""The job explorer's job page on both backends: attempts (worker, start, end, outcome,
error, traceback) reported by the worker with its batched statuses, the call's arguments,
the timeline; list filters by key and creation time, in-process, over HTTP and through
the Python client."""

from __future__ import annotations

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput, JobNotFound
from conveyor.jobs import JobFilter, JobStatus
from conveyor.worker import App, Worker, WorkerOptions
from tests.http.helpers import assert_error
from tests.worker.helpers import eventually, running


async def _status_is(app: App, job_id: str, status: str) -> bool:
    found = await app.job_status(job_id)
    return found is not None and found.status == status


async def _in_dlq(broker: Broker, dlq: str) -> bool:
    return (await broker.queue_stats(dlq)).visible == 1


def _explode(n: int) -> None:
    raise RuntimeError(f"run {n} breaks")


async def test_attempts_errors_tracebacks_arguments_and_timeline(
        broker: Broker, clock: ManualClock, http: httpx.AsyncClient) -> None:
    app = App(clock=clock, visibility_timeout=30)
    app.use(broker)
    runs: list[int] = []

    @app.task(queue="flaky", max_retries=0, track=True, keep_result=600,
              rate_limit_key=lambda n, who: f"customer-{who}", key_rate_limit="1000/s")
    async def once_broken(n: int, who: str) -> int:
        runs.append(n)
        if len(runs) == 1:
            _explode(len(runs))
        return n * 2

    job = await once_broken.aenqueue(7, who="acme")
    worker = Worker(app, WorkerOptions(wait_seconds=0, holder="worker-a"))
    async with running(worker):
        await eventually(lambda: _status_is(app, job.id, "dead"), what="dead")
        # Dead-lettered once its status is written: the message follows a moment later.
        await eventually(lambda: _in_dlq(broker, "flaky-dlq"), what="the dead letter")
        clock.advance(5)  # the second run starts later (an attempt is named by its start)
        await broker.jobs.retry(job.id)
        await eventually(lambda: _status_is(app, job.id, "succeeded"), what="succeeded")
    page = await broker.jobs.detail(job.id)
    status = page.status
    assert (status.key, status.args, status.result) == (
        "customer-acme", {"args": [7], "kwargs": {"who": "acme"}}, 14)
    first, second = page.attempts
    assert (first.attempt, first.outcome, first.worker, first.error) == (
        1, "dead", "worker-a", "RuntimeError: run 1 breaks")
    assert first.traceback is not None and first.traceback.startswith("Traceback")
    assert "_explode" in first.traceback and "RuntimeError: run 1 breaks" in first.traceback
    assert first.ended_at is not None and first.started_at <= first.ended_at
    assert (second.attempt, second.outcome, second.error, second.traceback) == (
        1, "succeeded", None, None)  # a retry from the dead letters runs attempt 1 again
    assert second.started_at >= first.started_at + 5_000
    assert [e[1] for e in page.timeline] == ["created", "started", "dead", "started",
                                             "succeeded"]
    assert page.timeline == sorted(page.timeline, key=lambda e: e[0])

    got = await http.get(f"/v1/jobs/{job.id}")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["args"] == {"args": [7], "kwargs": {"who": "acme"}}
    assert body["key"] == "customer-acme" and body["result"] == 14
    assert [a["outcome"] for a in body["attempt_history"]] == ["dead", "succeeded"]
    assert "_explode" in body["attempt_history"][0]["traceback"]
    assert body["timeline"][0]["event"] == "created"
    assert body["created_at"] <= body["attempt_history"][0]["started_at"] + 1

    listed = await http.get("/v1/jobs", params={"key": "customer-acme"})
    assert [j["job_id"] for j in listed.json()["jobs"]] == [job.id]
    assert (await http.get("/v1/jobs", params={"key": "customer-zed"})).json()["jobs"] == []


async def test_list_by_key_and_creation_time(broker: Broker, clock: ManualClock,
                                             http: httpx.AsyncClient) -> None:
    for i in range(4):
        await broker.jobs.status_set_many([JobStatus(f"j{i}", "queued", "q", "t",
                                                     key=f"k{i % 2}")])
        clock.advance(1)
    start = clock.ms - 4_000
    page = await broker.jobs.list(JobFilter(key="k1"))
    assert [j.job_id for j in page.jobs] == ["j3", "j1"]
    for i in range(4):  # every job updated now: creation time still tells them apart
        await broker.jobs.status_set(f"j{i}", "succeeded", queue="q", task="t", attempts=1)
    window = JobFilter(created_since=start + 1_000, created_until=start + 3_000)
    assert [j.job_id for j in (await broker.jobs.list(window)).jobs] == ["j2", "j1"]
    assert [j.job_id for j in (await broker.jobs.list(JobFilter(
        key="k0", created_until=start + 1_000))).jobs] == ["j0"]
    got = await http.get("/v1/jobs", params={"created_since": start + 2_000, "key": "k1"})
    assert [j["job_id"] for j in got.json()["jobs"]] == ["j3"]
    # A bulk delete takes the same filters.
    deleted = await http.post("/v1/jobs/delete", json={"key": "k0",
                                                       "created_since": start + 1_000})
    assert deleted.json()["deleted"] == 1
    assert [j.job_id for j in (await broker.jobs.list()).jobs] == ["j3", "j1", "j0"]


@pytest.mark.parametrize(("where", "field"), [
    (JobFilter(key=""), "key"), (JobFilter(created_since=-5), "created_since"),
    (JobFilter(created_until=2**60), "created_until")])
async def test_bad_new_filters_are_refused(broker: Broker, where: JobFilter,
                                           field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await broker.jobs.list(where)
    assert caught.value.field == field


async def test_unknown_job_page(broker: Broker, http: httpx.AsyncClient) -> None:
    with pytest.raises(JobNotFound):
        await broker.jobs.detail("nope")
    assert_error(await http.get("/v1/jobs/nope"), 404, "job_not_found")
    assert_error(await http.get("/v1/jobs", params={"created_since": "soon"}), 422,
                 "invalid_input")


async def test_bounded_arguments_and_tracebacks(broker: Broker) -> None:
    huge = "x" * 200_000
    await broker.jobs.status_set_many([
        JobStatus("big", "dead", "q", "t", 1, "E", args={"args": [huge]}, worker="w",
                  started_at=1, ended_at=2, traceback="Traceback\n" + "line\n" * 10_000
                  + "E: the end")])
    page = await broker.jobs.detail("big")
    assert isinstance(page.status.args, str) and len(page.status.args) <= 65_536
    [attempt] = page.attempts
    assert attempt.traceback is not None and len(attempt.traceback) <= 16_384
    assert attempt.traceback.endswith("E: the end")  # the end of a traceback is kept


async def test_a_snoozed_run_is_an_attempt_of_its_own(broker: Broker,
                                                     clock: ManualClock) -> None:
    from conveyor.worker import Snooze

    app = App(clock=clock, visibility_timeout=30)
    app.use(broker)
    runs: list[int] = []

    @app.task(queue="later", track=True)
    async def not_yet() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise Snooze(2)

    job = await not_yet.aenqueue()

    async def attempts(n: int) -> bool:
        return len((await broker.jobs.detail(job.id)).attempts) >= n

    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: attempts(1), what="the snoozed run")
        clock.advance(3)
        await eventually(lambda: _status_is(app, job.id, "succeeded"), what="succeeded")
    page = await broker.jobs.detail(job.id)
    assert [(a.attempt, a.outcome) for a in page.attempts] == [(1, "snoozed"),
                                                               (1, "succeeded")]
    assert page.attempts[0].error == "Snooze: snoozed for 2 s"
    assert page.attempts[0].traceback is None
