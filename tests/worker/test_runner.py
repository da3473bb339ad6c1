"""The run loop on both backends: success, retries with backoff, dead letters, Retry and
Cancel, timeouts, status and results, middleware and trace context, graceful shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.models import VisibilityEntry
from conveyor.worker import (
    App,
    Cancel,
    Middleware,
    Received,
    Retry,
    Worker,
    WorkerOptions,
    current_traceparent,
)
from conveyor.worker.task import Job, JobCall
from tests.worker.helpers import eventually, running


def make_app(broker: Broker, clock: ManualClock, **kwargs: Any) -> App:
    app = App(clock=clock, visibility_timeout=kwargs.pop("visibility_timeout", 30), **kwargs)
    app.use(broker)
    return app


async def test_jobs_run_sync_and_async(broker: Broker, clock: ManualClock) -> None:
    app = make_app(broker, clock)
    seen: list[tuple[str, int]] = []

    @app.task(queue="work", keep_result=60)
    async def double(x: int) -> int:
        seen.append(("async", x))
        return x * 2

    @app.task(queue="work")
    def record(x: int) -> None:
        seen.append(("sync", x))

    jobs = await double.aenqueue_many([((i,), {}) for i in range(10)])
    await record.aenqueue(99)
    assert len({j.id for j in jobs}) == 10
    assert (await app.job_status(jobs[0].id)).status == "queued"  # type: ignore[union-attr]
    worker = Worker(app, WorkerOptions(wait_seconds=0))
    async with running(worker):
        await eventually(lambda: len(seen) == 11, what="11 jobs")
        await eventually(lambda: _total(broker, "work"), what="acks")
    assert sorted(seen) == sorted([("async", i) for i in range(10)] + [("sync", 99)])
    status = await app.job_status(jobs[3].id)
    assert status is not None and status.status == "succeeded" and status.result == 6
    assert status.attempts == 1


async def _total(broker: Broker, queue: str) -> bool:
    return (await broker.queue_stats(queue)).total == 0


async def test_retries_back_off_then_dead_letter(broker: Broker, clock: ManualClock) -> None:
    app = make_app(broker, clock)
    runs: list[int] = []

    @app.task(queue="flaky", max_retries=2, retry_backoff=10, track=True)
    async def fail() -> None:
        runs.append(clock())
        raise RuntimeError(f"boom {len(runs)}")

    job = await fail.aenqueue()
    worker = Worker(app, WorkerOptions(wait_seconds=0))
    async with running(worker):
        for attempt, (low, high) in enumerate([(5, 10), (10, 20)], start=1):
            await eventually(lambda a=attempt: len(runs) == a, what=f"run {attempt}")
            await eventually(lambda: _delayed(broker, "flaky"), what="the retry")
            [peeked] = await broker.peek("flaky")
            delay = (peeked.visible_at - clock()) / 1000
            assert low <= delay <= high, (attempt, delay)
            assert peeked.last_error == f"RuntimeError: boom {attempt}"
            assert peeked.receive_count == attempt
            clock.advance(low - 1)
            await asyncio.sleep(0.1)
            assert len(runs) == attempt  # not before its backoff is over
            clock.advance(high - low + 1)
        await eventually(lambda: len(runs) == 3, what="the last run")
        await eventually(lambda: _dead(broker, "flaky-dlq"), what="the dead letter")
    [dead] = await broker.peek("flaky-dlq")
    assert dead.id == job.id and dead.last_error == "RuntimeError: boom 3"
    status = await app.job_status(job.id)
    assert status is not None and status.status == "dead" and status.attempts == 3


async def _delayed(broker: Broker, queue: str) -> bool:
    return (await broker.queue_stats(queue)).delayed == 1


async def _dead(broker: Broker, queue: str) -> bool:
    return (await broker.queue_stats(queue)).visible == 1


async def test_retry_and_cancel_exceptions(broker: Broker, clock: ManualClock) -> None:
    app = make_app(broker, clock)
    runs: list[str] = []

    @app.task(queue="steer", track=True)
    async def steer(what: str) -> str:
        runs.append(what)
        if what == "later" and len(runs) < 3:
            raise Retry(delay=7)
        if what == "drop":
            raise Cancel("not needed")
        return what

    cancelled = await steer.aenqueue("drop")
    later = await steer.aenqueue("later")
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: runs.count("later") == 1 and "drop" in runs)
        await eventually(lambda: _delayed(broker, "steer"))
        await eventually(lambda: _count_total(broker, "steer", 1), what="the cancel's ack")
        [peeked] = await broker.peek("steer")
        assert (peeked.visible_at - clock()) == 7000
        clock.advance(7)
        await eventually(lambda: runs.count("later") == 2)
        await eventually(lambda: _total(broker, "steer"), what="empty queue")
    status = await app.job_status(cancelled.id)
    assert status is not None and status.status == "cancelled"
    done = await app.job_status(later.id)
    assert done is not None and done.status == "succeeded" and done.attempts == 2
    assert (await broker.queue_stats("steer-dlq")).total == 0


async def test_timeout_fails_the_run(broker: Broker, clock: ManualClock) -> None:
    app = make_app(broker, clock)
    runs: list[int] = []

    @app.task(queue="slow", timeout=0.2, max_retries=0)
    async def slow() -> None:
        runs.append(1)
        await asyncio.sleep(30)

    job = await slow.aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: _dead(broker, "slow-dlq"), what="the dead letter")
    [dead] = await broker.peek("slow-dlq")
    assert dead.id == job.id and dead.last_error is not None
    assert dead.last_error.startswith("TaskTimeout")


async def test_unknown_task_and_bad_body_are_failures(broker: Broker,
                                                      clock: ManualClock) -> None:
    app = make_app(broker, clock)

    @app.task(queue="odd", max_retries=0)
    def known() -> None: ...

    await app.ensure_queue("odd")
    from conveyor.models import Body, SendEntry

    await broker.send("odd", [SendEntry(Body.of({"task": "nope"})), SendEntry(Body.of("x"))])
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: _count(broker, "odd-dlq", 2), what="two dead letters")
    # Moved whole, not copied: each remembers its source, so the source's dead-letter
    # count shows them and a redrive takes them home.
    assert {m.source_queue for m in await broker.peek("odd-dlq")} == {"odd"}
    assert (await broker.queue_stats("odd")).dead_letters == 2
    task = await broker.start_redrive("odd-dlq")
    assert (task.status, task.to_move, task.moved) == ("completed", 2, 2)
    assert (await broker.queue_stats("odd")).visible == 2


async def _count_total(broker: Broker, queue: str, n: int) -> bool:
    return (await broker.queue_stats(queue)).total == n


async def _count(broker: Broker, queue: str, n: int) -> bool:
    return (await broker.queue_stats(queue)).visible == n


class Recorder(Middleware):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def before_enqueue(self, app: App, call: JobCall) -> None:
        self.log.append(f"before_enqueue {call.task}")

    async def after_enqueue(self, app: App, call: JobCall, job: Job) -> None:
        self.log.append(f"after_enqueue {call.task}")

    async def before_process(self, app: App, job: Received) -> None:
        self.log.append(f"before_process {job.task}")

    async def after_process(self, app: App, job: Received, result: Any,
                            exception: BaseException | None) -> None:
        self.log.append(f"after_process {job.task} {result} {exception}")


async def test_middleware_and_trace_context(broker: Broker, clock: ManualClock) -> None:
    from conveyor.worker import TraceContext

    log: list[str] = []
    app = make_app(broker, clock, middleware=[TraceContext(), Recorder(log)])
    traces: list[str | None] = []

    @app.task(queue="traced")
    async def child() -> str:
        traces.append(current_traceparent.get())
        return "ok"

    @app.task(queue="traced")
    async def parent() -> None:
        traces.append(current_traceparent.get())
        await child.aenqueue()

    await parent.aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: len(traces) == 2)
        await eventually(lambda: "after_process child ok None" in log)
    assert log[:2] == ["before_enqueue parent", "after_enqueue parent"]
    assert "before_process parent" in log
    first, second = traces
    assert first is not None and second is not None
    assert first.split("-")[1] == second.split("-")[1]  # one trace
    assert first.split("-")[2] != second.split("-")[2]  # two spans


async def test_graceful_shutdown_finishes_or_releases(broker: Broker,
                                                      clock: ManualClock) -> None:
    app = make_app(broker, clock)
    started: list[int] = []
    finished: list[int] = []
    gate = asyncio.Event()

    @app.task(queue="inflight", concurrency=4)
    async def work(i: int) -> None:
        started.append(i)
        if i % 2:
            await asyncio.sleep(3600)  # never finishes: must be released
        await gate.wait()
        finished.append(i)

    await work.aenqueue_many([((i,), {}) for i in range(8)])
    worker = Worker(app, WorkerOptions(wait_seconds=0, shutdown_grace=0.5))
    task = asyncio.create_task(worker.run())
    await eventually(lambda: len(started) == 4, what="four jobs in flight")
    worker.stop()
    gate.set()
    await asyncio.wait_for(task, 10)
    stats = await broker.queue_stats("inflight")
    # The even jobs finished and were acknowledged; the odd ones were released at once.
    assert len(finished) == sum(1 for i in started if i % 2 == 0)
    assert stats.in_flight == 0 and stats.visible == 8 - len(finished)
    released = await broker.receive("inflight", 10)
    assert {m.receive_count for m in released} <= {1, 2}
    await broker.change_visibility("inflight", [VisibilityEntry(m.receipt_handle, 0)
                                                for m in released])


@pytest.mark.parametrize("max_retries", [1])
async def test_task_with_fewer_retries_than_its_queue_moves_explicitly(
        broker: Broker, clock: ManualClock, max_retries: int) -> None:
    app = make_app(broker, clock)

    @app.task(queue="mixed", max_retries=5)
    def patient() -> None: ...

    @app.task(queue="mixed", max_retries=0)
    def hasty() -> None:
        raise ValueError("no")

    job = await hasty.aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: _dead(broker, "mixed-dlq"))
        await eventually(lambda: _total(broker, "mixed"))
    [dead] = await broker.peek("mixed-dlq")
    assert dead.id == job.id and dead.last_error == "ValueError: no"
    assert dead.source_queue == "mixed"


async def test_each_task_keeps_its_concurrency_on_a_shared_queue(
        broker: Broker, clock: ManualClock) -> None:
    app = make_app(broker, clock)
    running_now = {"narrow": 0, "wide": 0}
    most = {"narrow": 0, "wide": 0}
    done: list[str] = []

    async def step(name: str) -> None:
        running_now[name] += 1
        most[name] = max(most[name], running_now[name])
        await asyncio.sleep(0.02)
        running_now[name] -= 1
        done.append(name)

    @app.task(queue="shared", concurrency=2)
    async def narrow() -> None:
        await step("narrow")

    @app.task(queue="shared", concurrency=8)
    async def wide() -> None:
        await step("wide")

    await narrow.aenqueue_many([((), {}) for _ in range(12)])
    await wide.aenqueue_many([((), {}) for _ in range(12)])
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: len(done) == 24, what="24 jobs")
    assert most["narrow"] == 2 and 2 < most["wide"] <= 8


async def test_jobs_keep_their_own_context_and_run_concurrently(
        broker: Broker, clock: ManualClock) -> None:
    import contextvars

    import anyio

    app = make_app(broker, clock)
    seen = contextvars.ContextVar[int | None]("seen", default=None)
    leaked: list[int] = []
    running_now = [0]
    most = [0]
    done: list[int] = []

    @app.task(queue="ctx", concurrency=20)
    async def job(i: int) -> None:
        if seen.get() is not None:  # another job's value: contexts leaked
            leaked.append(i)
        seen.set(i)
        if i % 2:  # half of them wait (inside an anyio cancel scope, as httpx does)
            running_now[0] += 1
            most[0] = max(most[0], running_now[0])
            with anyio.fail_after(5):
                await asyncio.sleep(0.05)
            running_now[0] -= 1
        assert seen.get() == i
        done.append(i)

    await job.aenqueue_many([((i,), {}) for i in range(60)])
    async with running(Worker(app, WorkerOptions(wait_seconds=0, batch_size=60))):
        await eventually(lambda: len(done) == 60, what="60 jobs")
    assert leaked == []
    assert most[0] >= 10  # the waiting jobs overlapped: no lane ran them one by one


async def test_a_dead_job_stays_dead_when_its_running_status_is_written_late(
        broker: Broker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker writes statuses in batches; one batch slow to land (a busy server, a
    request retried) must not land after the next: a dead job accepts any status (a
    redrive starts it over), so a late `running` would reopen it for good."""
    app = make_app(broker, clock)

    @app.task(queue="doomed", max_retries=1, retry_backoff=False, track=True)
    async def fail() -> None:
        await asyncio.sleep(0.25)  # longer than the batch interval: a batch per step
        raise RuntimeError("no")

    write = broker.jobs.status_set_many
    written: list[list[str]] = []

    async def slow_running(items: Any, **kwargs: Any) -> None:
        if any(s.status == "running" and s.attempts == 2 for s in items):
            await asyncio.sleep(0.5)  # the last attempt's start, held up on its way
        await write(items, **kwargs)
        written.append([s.status for s in items])

    monkeypatch.setattr(broker.jobs, "status_set_many", slow_running)
    job = await fail.aenqueue()
    worker = Worker(app, WorkerOptions(wait_seconds=0))
    async with running(worker):
        await eventually(lambda: any("dead" in w for w in written), what="dead written")
    status = await app.job_status(job.id)
    assert status is not None and (status.status, status.attempts) == ("dead", 2), written


async def test_a_redriven_dead_job_runs_again_and_its_status_follows(
        broker: Broker, clock: ManualClock) -> None:
    """A dead job takes a write that starts it over: a redrive's run (attempt 1 again,
    under a new start), however fast it ends, though no late write of its old runs."""
    app = make_app(broker, clock)
    runs: list[int] = []

    @app.task(queue="phoenix", max_retries=0, track=True)
    async def rise() -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            raise RuntimeError("first run breaks")

    job = await rise.aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        await eventually(lambda: _count(broker, "phoenix-dlq", 1), what="the dead letter")
        dead = await app.job_status(job.id)
        assert dead is not None and (dead.status, dead.attempts) == ("dead", 1)
        clock.advance(1)  # the run after the redrive starts later
        assert (await broker.start_redrive("phoenix-dlq")).moved == 1
        await eventually(lambda: _job_is(app, job.id, "succeeded"), what="succeeded")
    assert runs == [1, 2]
    page = await broker.jobs.detail(job.id)
    assert [(a.attempt, a.outcome) for a in page.attempts] == [(1, "dead"), (1, "succeeded")]


async def _job_is(app: App, job_id: str, status: str) -> bool:
    found = await app.job_status(job_id)
    return found is not None and found.status == status
