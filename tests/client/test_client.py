"""The clients against a real `conveyor serve` process: the Broker's surface and errors."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from conveyor import errors
from conveyor.client import AsyncClient, Client, ServerUnavailable
from conveyor.ids import new_message_ids
from conveyor.jobs import JobFilter
from conveyor.models import Body, BodyKind, MessageAttribute, SendEntry, VisibilityEntry
from tests.http.server import ServerProcess, start_server

_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = Path(tmp_path_factory.mktemp("server"))
    process = start_server(directory, ["--database", f"sqlite:///{directory}/c.db",
                                       "--no-sqs"])
    yield process
    assert process.stop() == 0, process.logs()


@pytest.fixture
async def aclient(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, timeout=10) as client:
        yield client


def _name() -> str:
    return f"cq{next(_names)}"


async def test_async_client_round_trip(aclient: AsyncClient) -> None:
    name = _name()
    queue, created = await aclient.create_queue(name, {"visibility_timeout": 5})
    assert created and queue.name == name and queue.attributes.visibility_timeout == 5
    assert (await aclient.create_queue(name, {"visibility_timeout": 5}))[1] is False
    sent = await aclient.send(name, [
        SendEntry(Body.of({"a": 1})), SendEntry(Body.of('{"a":1}'), priority=3),
        SendEntry(Body.of("x"), attributes={"n": MessageAttribute("Number", "7"),
                                             "b": MessageAttribute("Binary", b"\x00\xff")})])
    assert len(sent) == 3
    got = await aclient.receive(name, 10, wait_seconds=1)
    assert {m.id for m in got} == {s.id for s in sent}
    by_id = {m.id: m for m in got}
    assert by_id[sent[0].id].body == Body('{"a":1}', BodyKind.JSON)
    assert by_id[sent[1].id].body == Body('{"a":1}', BodyKind.TEXT)
    assert by_id[sent[2].id].attributes["b"].value == b"\x00\xff"
    assert all(m.queue == name and m.receive_count == 1 for m in got)
    first, second, third = (by_id[s.id] for s in sent)
    results = await aclient.change_visibility(name, [VisibilityEntry(first.receipt_handle, 0)])
    assert results[0].ok
    retried = await aclient.retry(name, second.receipt_handle, 0, "boom")
    assert retried.ok
    again = await aclient.receive(name, 10, wait_seconds=1)
    assert {m.id for m in again} == {first.id, second.id}
    assert {m.id: m.last_error for m in again}[second.id] == "boom"
    deleted = await aclient.delete(name, [third.receipt_handle, *(m.receipt_handle
                                                                  for m in again)])
    assert [r.status for r in deleted] == ["ok", "ok", "ok"]
    assert (await aclient.delete(name, [third.receipt_handle]))[0].status == "stale"
    stats = await aclient.queue_stats(name)
    assert stats.total == 0
    paused = await aclient.update_queue(name, {"paused": True})
    assert paused.attributes.paused
    assert name in [q.name for q in await aclient.list_queues(prefix="cq")]
    await aclient.delete_queue(name)


async def test_async_client_errors(aclient: AsyncClient) -> None:
    with pytest.raises(errors.QueueNotFound):
        await aclient.receive("no-such-queue")
    name = _name()
    await aclient.create_queue(name)
    with pytest.raises(errors.QueueAlreadyExists):
        await aclient.create_queue(name, {"visibility_timeout": 7})
    with pytest.raises(errors.InvalidInput) as caught:
        await aclient.send(name, [SendEntry(Body.of("ok")), SendEntry(Body.of("x"),
                                                                      priority=99)])
    assert caught.value.index == 1
    with pytest.raises(errors.InvalidQueueName):
        await aclient.create_queue("bad name!")


async def test_unreachable_server() -> None:
    async with AsyncClient("http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(ServerUnavailable):
            await client.get_queue("x")


def test_sync_client(server: ServerProcess) -> None:
    name = _name()
    with Client(server.url, timeout=10) as client:
        client.create_queue(name)
        [sent] = client.send(name, [SendEntry(Body.of([1, 2]), delay_seconds=0)])
        [message] = client.receive(name, 1, visibility_timeout=30, wait_seconds=1)
        assert message.id == sent.id and message.body.value() == [1, 2]
        assert client.delete(name, [message.receipt_handle])[0].ok
        assert client.queue_stats(name).total == 0
        assert client.purge_queue(name) == 0
        with pytest.raises(errors.QueueNotFound):
            client.get_queue(name + "-missing")


async def test_limits_and_jobs_through_the_server(aclient: AsyncClient) -> None:
    grant = await aclient.limits.take("k-take", 5, 1.0, want=10)
    assert grant.granted == 5 and grant.retry_after > 0
    assert await aclient.limits.acquire("k-slot", 2, "me", want=3) == 2
    assert await aclient.limits.renew("k-slot", "me") == 2
    await aclient.limits.release("k-slot", "me", 2)
    assert await aclient.limits.acquire("k-slot", 2, "you") == 1
    await aclient.limits.penalize("k-take", 5)
    tick = int(time.time()) // 60 * 60_000
    assert await aclient.jobs.cron_claim("s", tick) is True
    assert await aclient.jobs.cron_claim("s", tick) is False
    (j1,) = new_message_ids(1)  # a server takes reports under job ids (UUIDs) only
    await aclient.jobs.status_set(j1, "succeeded", queue="q", task="t", result={"a": 1})
    found = await aclient.jobs.status_get(j1)
    assert found is not None and found.result == {"a": 1} and found.status == "succeeded"
    assert await aclient.jobs.status_get("nope") is None
    assert (await aclient.jobs.status_counts("q"))["succeeded"] == 1


async def test_a_worker_through_the_server(server: ServerProcess) -> None:
    from conveyor.worker import App, Worker, WorkerOptions
    from tests.worker.helpers import eventually, running

    app = App(server.url)
    done: list[int] = []

    @app.task(queue="via-http", rate_limit="100/s", global_concurrency=3, keep_result=60)
    async def square(x: int) -> int:
        done.append(x)
        if x == 3 and len(done) < 5:
            raise RuntimeError("once")
        return x * x

    jobs = await square.aenqueue_many([((i,), {}) for i in range(8)])
    async with running(Worker(app, WorkerOptions(wait_seconds=1))):
        await eventually(lambda: len(set(done)) == 8, what="all ran")
        await eventually(lambda: _succeeded(app, jobs[7].id), what="status")
    status = await app.job_status(jobs[2].id)
    assert status is not None and status.result == 4
    await app.aclose()


async def _succeeded(app: object, job_id: str) -> bool:
    from conveyor.worker import App

    assert isinstance(app, App)
    status = await app.job_status(job_id)
    return status is not None and status.status == "succeeded"


def test_sync_limits_and_jobs(server: ServerProcess) -> None:
    with Client(server.url, timeout=10) as client:
        assert client.limits.take("sync-k", 3, 1.0, want=2).granted == 2
        assert client.limits.acquire("sync-slot", 1, "h") == 1
        assert client.limits.renew("sync-slot", "h") == 1
        client.limits.release("sync-slot", "h")
        assert client.jobs.cron_claim("sync-s", int(time.time()) * 1000) is True
        (sj,) = new_message_ids(1)
        client.jobs.status_set(sj, "queued", queue="q")
        assert client.jobs.status_get(sj) is not None
        assert client.jobs.status_counts()["queued"] >= 1


def test_sync_client_stats_peek_and_redrive(server: ServerProcess) -> None:
    """The calls the CLI uses beyond the Broker's queue surface: a queue with its counts
    (one or a page), peek, and a redrive polled through its task."""
    name, dlq = _name(), _name()
    huge = 123456789012345678901234567890  # beyond 64 bits: read back exactly
    with Client(server.url, timeout=10) as client:
        client.create_queue(dlq)
        client.create_queue(name, {"max_receive_count": 1, "dead_letter_queue": dlq,
                                   "visibility_timeout": 0})
        [sent] = client.send(name, [SendEntry(Body.of({"n": huge}))])
        queue, stats = client.get_queue_with_stats(name)
        assert queue.name == name and stats.visible == 1
        listed = dict((q.name, s) for q, s in client.list_queues_with_stats(prefix=name))
        assert listed[name].visible == 1
        [peeked] = client.peek(name)
        assert peeked.id == sent.id and json.loads(peeked.body.text) == {"n": huge}
        assert peeked.receive_count == 0 and client.queue_stats(name).visible == 1
        client.receive(name)
        client.receive(name)  # the second receive dead-letters it
        task = client.start_redrive(dlq)
        while task.status == "running":
            time.sleep(0.05)
            task = client.get_move_task(task.id)
        assert (task.status, task.moved, task.source_queue) == ("completed", 1, dlq)
        with pytest.raises(errors.TaskNotFound):
            client.get_move_task("no-such-task")
        [back] = client.receive(name)
        assert json.loads(back.body.text) == {"n": huge}


async def test_the_job_explorer_through_the_server(aclient: AsyncClient) -> None:
    name = _name()
    await aclient.create_queue(name + "-dlq")
    await aclient.create_queue(name, {"dead_letter_queue": name + "-dlq",
                                      "max_receive_count": 3})
    [sent] = await aclient.send(name, [SendEntry(Body.of({"task": "t"}))])
    [message] = await aclient.receive(name)
    await aclient.retry(name, message.receipt_handle, 0, "boom", dead_letter=True)
    await aclient.jobs.status_set(sent.id, "dead", queue=name, task="t", attempts=1)
    (ok,) = new_message_ids(1)
    await aclient.jobs.status_set(ok, "succeeded", queue=name, attempts=1)
    page = await aclient.jobs.list(JobFilter(queue=name), limit=1)
    assert len(page.jobs) == 1 and page.next is not None
    rest = await aclient.jobs.list(JobFilter(queue=name), after=page.next)
    assert {j.job_id for j in page.jobs + rest.jobs} == {sent.id, ok}
    assert rest.next is None
    assert (await aclient.jobs.retry(sent.id)).status == "queued"
    with pytest.raises(errors.JobNotRetryable):
        await aclient.jobs.retry(sent.id)
    with pytest.raises(errors.JobNotFound):
        await aclient.jobs.retry("nope")
    assert await aclient.jobs.retry_many(JobFilter(queue=name)) == ([], [], None)
    assert await aclient.jobs.delete_many(JobFilter(queue=name, state="succeeded")) == (1, None)
    with pytest.raises(errors.Conflict):
        await aclient.jobs.delete(sent.id)  # queued
    with pytest.raises(errors.InvalidInput) as caught:
        await aclient.jobs.list(JobFilter(state="finished"))
    assert caught.value.field == "state"
