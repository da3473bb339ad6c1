"""The job explorer on both backends: list by filter with keyset paging, retry and delete
one job or in bulk, in-process (`broker.jobs`) and over HTTP."""

from __future__ import annotations

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import Conflict, InvalidInput, JobMessageGone, JobNotFound, JobNotRetryable
from conveyor.jobs import JobFilter, JobStatus
from conveyor.models import Body, SendEntry
from conveyor.worker import App, Worker, WorkerOptions
from tests.http.helpers import assert_error
from tests.worker.helpers import eventually, running


async def dead_job(broker: Broker, queue: str = "work", task: str = "t") -> str:
    """A tracked job the worker's way: sent, received, failed for good (its message moved
    to `<queue>-dlq` whole), its status `dead`. Returns its id."""
    await broker.create_queue(queue + "-dlq")
    await broker.create_queue(queue, {"dead_letter_queue": queue + "-dlq",
                                      "max_receive_count": 3})
    body = Body.of({"task": task, "args": [], "kwargs": {}})
    [sent] = await broker.send(queue, [SendEntry(body)])
    [message] = [m for m in await broker.receive(queue, 10) if m.id == sent.id]
    await broker.retry(queue, message.receipt_handle, 0, "boom", dead_letter=True)
    await broker.jobs.status_set(sent.id, "dead", queue=queue, task=task, attempts=1,
                                 error="boom")
    return sent.id


async def test_list_filters_and_pages_newest_first(broker: Broker, clock: ManualClock) -> None:
    for i in range(5):
        await broker.jobs.status_set(f"j{i}", "dead" if i % 2 else "succeeded",
                                     queue="a" if i < 3 else "b", task=f"t{i % 2}",
                                     attempts=1)
        clock.advance(1)
    page = await broker.jobs.list(limit=2)
    assert [j.job_id for j in page.jobs] == ["j4", "j3"] and page.next is not None
    rest = await broker.jobs.list(limit=10, after=page.next)
    assert [j.job_id for j in rest.jobs] == ["j2", "j1", "j0"] and rest.next is None
    dead = await broker.jobs.list(JobFilter(state="dead"))
    assert [j.job_id for j in dead.jobs] == ["j3", "j1"]
    assert [j.job_id for j in (await broker.jobs.list(JobFilter(queue="b", task="t0"))).jobs
            ] == ["j4"]
    start = clock.ms - 4_000  # j0 was written 5 s ago, j1 4 s ago, ...
    window = await broker.jobs.list(JobFilter(updated_since=start, updated_until=start + 2_000))
    assert [j.job_id for j in window.jobs] == ["j2", "j1"]


@pytest.mark.parametrize(("where", "field"), [
    (JobFilter(state="finished"), "state"), (JobFilter(queue="no such/queue"), "queue"),
    (JobFilter(updated_since=-1), "updated_since"), (JobFilter(task=""), "task")])
async def test_bad_filters_are_refused(broker: Broker, where: JobFilter, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await broker.jobs.list(where)
    assert caught.value.field == field


async def test_bad_cursor_and_limit_are_refused(broker: Broker) -> None:
    with pytest.raises(InvalidInput) as caught:
        await broker.jobs.list(after="not-a-cursor")
    assert caught.value.field == "after"
    with pytest.raises(InvalidInput) as caught:
        await broker.jobs.list(limit=0)
    assert caught.value.field == "limit"


async def test_retry_sends_a_dead_job_again_under_its_id(broker: Broker) -> None:
    job_id = await dead_job(broker)
    assert await broker.receive("work", 10) == []
    again = await broker.jobs.retry(job_id)
    assert (again.job_id, again.status, again.attempts, again.task) == (job_id, "queued", 0,
                                                                        "t")
    [message] = await broker.receive("work", 10)
    assert (message.id, message.receive_count) == (job_id, 1)  # a fresh start
    assert (await broker.queue_stats("work-dlq")).visible == 0
    # Now it is queued: a second retry is refused and changes nothing.
    with pytest.raises(JobNotRetryable):
        await broker.jobs.retry(job_id)


async def test_retry_of_a_failed_job_and_refusals(broker: Broker) -> None:
    job_id = await dead_job(broker)
    await broker.jobs.status_set(job_id, "failed", queue="work", task="t", attempts=9)
    assert (await broker.jobs.retry(job_id)).status == "queued"  # a final status, replaced
    with pytest.raises(JobNotFound):
        await broker.jobs.retry("never-seen")
    await broker.jobs.status_set("s", "succeeded", queue="work", attempts=1)
    with pytest.raises(JobNotRetryable):
        await broker.jobs.retry("s")
    # Dead, but its message was purged: refused, and the status stays dead.
    gone = await dead_job(broker, "other")
    await broker.purge_queue("other-dlq")
    with pytest.raises(JobMessageGone):
        await broker.jobs.retry(gone)
    found = await broker.jobs.status_get(gone)
    assert found is not None and found.status == "dead"


async def test_bulk_retry_pages_through_and_says_what_it_skipped(broker: Broker) -> None:
    ids = [await dead_job(broker) for _ in range(3)]
    gone = await dead_job(broker, "other")
    await broker.purge_queue("other-dlq")
    await broker.jobs.status_set("ok", "succeeded", queue="work", attempts=1)
    done, skipped, after = await broker.jobs.retry_many(limit=3, all_jobs=True)
    assert after is not None and len(done) + len(skipped) == 3
    more, skipped_too, last = await broker.jobs.retry_many(limit=3, after=after, all_jobs=True)
    assert last is None
    assert sorted(j.job_id for j in done + more) == sorted(ids)
    assert [(s.job_id, s.code) for s in skipped + skipped_too] == [(gone,
                                                                    "job_message_gone")]
    assert len(await broker.receive("work", 10)) == 3
    with pytest.raises(InvalidInput):
        await broker.jobs.retry_many(JobFilter(state="running"))


async def test_delete_forgets_ended_jobs_and_their_dead_letters(broker: Broker) -> None:
    job_id = await dead_job(broker)
    await broker.jobs.delete(job_id)
    assert await broker.jobs.status_get(job_id) is None
    assert (await broker.queue_stats("work-dlq")).visible == 0  # a redrive cannot revive it
    await broker.jobs.status_set("busy", "running", queue="work", attempts=1)
    with pytest.raises(Conflict):
        await broker.jobs.delete("busy")
    await broker.jobs.status_set_many([JobStatus(f"s{i}", "succeeded", "work", attempts=1)
                                       for i in range(3)])
    deleted, after = await broker.jobs.delete_many(JobFilter(state="succeeded"), limit=2)
    assert deleted == 2 and after is not None  # one more is left
    deleted, after = await broker.jobs.delete_many(limit=10, all_jobs=True)
    assert (deleted, after) == (1, None)
    assert [j.job_id for j in (await broker.jobs.list()).jobs] == ["busy"]


async def test_over_http(http: httpx.AsyncClient, broker: Broker) -> None:
    job_id = await dead_job(broker)
    await broker.jobs.status_set("s", "succeeded", queue="work", task="t", attempts=1)
    listed = (await http.get("/v1/jobs", params={"state": "dead"})).json()
    assert [j["job_id"] for j in listed["jobs"]] == [job_id] and listed["next"] is None
    page = (await http.get("/v1/jobs", params={"limit": 1})).json()
    assert len(page["jobs"]) == 1 and page["next"]
    counts = (await http.get("/v1/jobs/counts", params={"queue": "work"})).json()["counts"]
    assert (counts["dead"], counts["succeeded"]) == (1, 1)
    response = await http.post(f"/v1/jobs/{job_id}/retry")
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert_error(await http.post(f"/v1/jobs/{job_id}/retry"), 409, "job_not_retryable")
    assert_error(await http.post("/v1/jobs/nope/retry"), 404, "job_not_found")
    bulk = (await http.post("/v1/jobs/retry", json={"queue": "work"})).json()
    assert bulk == {"retried": [], "skipped": [], "next": None}
    response = await http.post("/v1/jobs/delete", json={"state": "succeeded"})
    assert response.json() == {"deleted": 1, "next": None}
    assert (await http.delete(f"/v1/jobs/{job_id}")).status_code == 409  # queued
    assert_error(await http.delete("/v1/jobs/s"), 404, "job_not_found")


@pytest.mark.parametrize(("params", "field"), [
    ({"state": "finished"}, "state"), ({"limit": "0"}, "limit"), ({"after": "x"}, "after"),
    ({"updated_since": "yesterday"}, "updated_since"), ({"queue": "a b"}, "queue")])
async def test_bad_list_parameters_over_http(http: httpx.AsyncClient, params: dict[str, str],
                                             field: str) -> None:
    assert_error(await http.get("/v1/jobs", params=params), 422, field=field)


async def test_bulk_bad_body_over_http(http: httpx.AsyncClient) -> None:
    assert_error(await http.post("/v1/jobs/retry", json={"state": "queued"}), 422,
                 "invalid_input", field="state")
    assert_error(await http.post("/v1/jobs/delete", json={"limit": 5000}), 422,
                 "invalid_input", field="limit")
    assert_error(await http.post("/v1/jobs/retry", json={"colour": "red"}), 422,
                 "invalid_input", field="colour")
    # JSON true is not the time 1 ms (it matched nothing and answered 200; schemathesis)
    assert_error(await http.post("/v1/jobs/retry", json={"updated_until": True}), 422,
                 "invalid_input", field="updated_until")
    assert_error(await http.post("/v1/jobs/delete", json={"limit": True}), 422,
                 "invalid_input", field="limit")


async def test_a_worker_runs_a_retried_job_to_success(broker: Broker,
                                                      clock: ManualClock) -> None:
    app = App(clock=clock, visibility_timeout=30)
    app.use(broker)
    runs: list[int] = []

    @app.task(queue="flaky", max_retries=0, track=True)
    async def once_broken(n: int) -> None:
        runs.append(n)
        if len(runs) == 1:
            raise RuntimeError("first run breaks")

    job = await once_broken.aenqueue(7)
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: _status_is(app, job.id, "dead"), what="dead")
        page = await broker.jobs.list(JobFilter(state="dead", task=once_broken.name))
        assert [(j.job_id, j.error) for j in page.jobs] == [
            (job.id, "RuntimeError: first run breaks")]
        # Dead-lettered once its status is written: the message follows a moment later.
        await eventually(lambda: _in_dlq(broker, "flaky-dlq"), what="the dead letter")
        await broker.jobs.retry(job.id)
        await eventually(lambda: _status_is(app, job.id, "succeeded"), what="succeeded")
    assert runs == [7, 7]  # the same arguments, from the dead-letter message
    found = await app.job_status(job.id)
    assert found is not None and found.attempts == 1  # started over


async def _status_is(app: App, job_id: str, status: str) -> bool:
    found = await app.job_status(job_id)
    return found is not None and found.status == status


async def _in_dlq(broker: Broker, dlq: str) -> bool:
    return (await broker.queue_stats(dlq)).visible == 1
