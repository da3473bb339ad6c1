"""A tracked job whose message the broker moves to the dead-letter queue (received
`max_receive_count` times without an acknowledgement) ends `dead`, in the receive's own
transaction; standard and FIFO queues, both backends. (tests/worker/test_crash_gaps.py
kills a real worker for it.)"""

from __future__ import annotations

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.jobs import JobStatus
from conveyor.models import Body, SendEntry


@pytest.mark.parametrize("queue", ["plain", "ordered.fifo"])
async def test_a_running_job_dead_lettered_by_the_broker_ends_dead(
        broker: Broker, clock: ManualClock, queue: str) -> None:
    fifo = queue.endswith(".fifo")
    dlq = "dead.fifo" if fifo else "dead"
    await broker.create_queue(dlq)
    await broker.create_queue(queue, {"dead_letter_queue": dlq, "max_receive_count": 2})
    body = Body.of({"task": "t", "args": [], "kwargs": {}})
    sent = await broker.send(queue, [SendEntry(body, group_id="g" if fifo else None,
                                               deduplication_id=str(i)) for i in range(3)])
    tracked, done, plain = (s.id for s in sent)
    for attempt in (1, 2):
        received = await broker.receive(queue, 10, visibility_timeout=5)
        assert [m.receive_count for m in received] == [attempt] * 3
        await broker.jobs.status_set_many([
            JobStatus(tracked, "running", queue, "t", attempt, worker="w",
                      started_at=clock.ms),
            JobStatus(done, "running" if attempt == 1 else "dead", queue, "t", attempt,
                      worker="w", started_at=clock.ms,
                      ended_at=None if attempt == 1 else clock.ms + 1)])
        clock.advance(6)
    assert await broker.receive(queue, 10) == []  # all three moved
    assert (await broker.queue_stats(dlq)).visible == 3
    found = await broker.jobs.status_get(tracked)
    assert found is not None and (found.status, found.attempts) == ("dead", 2)
    assert found.error is not None and "dead-letter queue" in found.error
    attempts = await broker.storage.job_attempts(tracked)
    # Every attempt its worker left open ends with it (the error says why: none answered).
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "dead"), (2, "dead")]
    ended = await broker.jobs.status_get(done)  # dead already: left as its worker wrote it
    assert ended is not None and (ended.status, ended.error) == ("dead", None)
    assert await broker.jobs.status_get(plain) is None  # a plain message has no status
