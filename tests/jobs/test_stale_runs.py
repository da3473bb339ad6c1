"""A frozen worker's late status write, after a retry reopened its job, changes nothing:
its run is older than the job's current one, though its attempt number is the higher
(the retry started the job over at attempt 1). Through the real broker, on both backends."""

from __future__ import annotations

import asyncio
import threading

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.jobs import JobStatus
from conveyor.models import Body, SendEntry
from conveyor.worker.context import JobContext

QUEUE = "stale"


async def test_a_late_write_of_an_older_run_changes_nothing(broker: Broker,
                                                            clock: ManualClock) -> None:
    await broker.create_queue(QUEUE + "-dlq")
    await broker.create_queue(QUEUE, {"dead_letter_queue": QUEUE + "-dlq",
                                      "max_receive_count": 3})
    body = Body.of({"task": "t", "args": [], "kwargs": {}})
    [sent] = await broker.send(QUEUE, [SendEntry(body)])
    job = sent.id
    await broker.jobs.status_set_many([JobStatus(job, "queued", QUEUE, "t")])
    for attempt in (1, 2, 3):  # worker A's runs, each lease lapsing
        [message] = await broker.receive(QUEUE, 1, visibility_timeout=5)
        assert message.receive_count == attempt
        frozen_start = clock.ms
        await broker.jobs.status_set_many([JobStatus(
            job, "running", QUEUE, "t", attempt, worker="A", started_at=frozen_start)])
        clock.advance(6)
    # A froze in attempt 3: the next receive moves the message to the dead-letter queue
    # and the job ends dead; an operator retries it, and worker B runs it afresh.
    assert await broker.receive(QUEUE, 1) == []
    assert (await _status(broker, job)).status == "dead"
    assert (await broker.jobs.retry(job)).status == "queued"
    [again] = await broker.receive(QUEUE, 1, visibility_timeout=30)
    assert again.receive_count == 1
    clock.advance(1)
    current_start = clock.ms
    await broker.jobs.status_set_many([JobStatus(
        job, "running", QUEUE, "t", 1, worker="B", started_at=current_start)])
    # A wakes up: its job reports progress, then A reports attempt 3 failed, to be
    # retried. Late writes, in the wrong order with B's.
    reports: list[JobStatus] = []
    JobContext(job, "t", QUEUE, 3, 86_400, reports.append, asyncio.get_running_loop(),
               threading.get_ident(), started_at=frozen_start, worker="A").progress(99)
    await broker.jobs.status_set_many(reports)
    clock.advance(1)
    await broker.jobs.status_set_many([JobStatus(
        job, "retrying", QUEUE, "t", 3, error="late", worker="A", started_at=frozen_start,
        ended_at=clock.ms)])
    now = await _status(broker, job)
    assert (now.status, now.attempts, now.error, now.progress) == ("running", 1, None, None)
    # B's end lands: the job's status is right, for good.
    await broker.jobs.status_set_many([JobStatus(
        job, "succeeded", QUEUE, "t", 1, worker="B", started_at=current_start,
        ended_at=clock.ms)])
    end = await _status(broker, job)
    assert (end.status, end.attempts) == ("succeeded", 1)


async def test_a_new_run_and_its_own_writes_still_land(broker: Broker,
                                                       clock: ManualClock) -> None:
    # The guard spares the current run (its own end) and a new run (never recorded):
    # a lease that lapsed without a retry runs attempt 2 over attempt 1 as before.
    first, second = clock.ms, clock.ms + 1_000
    await broker.jobs.status_set_many([
        JobStatus("j", "running", QUEUE, "t", 1, worker="A", started_at=first)])
    await broker.jobs.status_set_many([
        JobStatus("j", "running", QUEUE, "t", 2, worker="B", started_at=second)])
    await broker.jobs.status_set_many([  # A's late end of attempt 1: behind, ignored
        JobStatus("j", "succeeded", QUEUE, "t", 1, worker="A", started_at=first,
                  ended_at=second + 5)])
    assert (await _status(broker, "j")).status == "running"
    await broker.jobs.status_set_many([
        JobStatus("j", "retrying", QUEUE, "t", 2, worker="B", started_at=second,
                  ended_at=second + 10)])
    assert (await _status(broker, "j")).status == "retrying"


async def _status(broker: Broker, job_id: str) -> JobStatus:
    found = await broker.jobs.status_get(job_id)
    assert found is not None
    return found
