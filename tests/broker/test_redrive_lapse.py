"""A redrive whose runner is gone (its server killed mid-way) does not stay `running` for
good, blocking every later redrive of its queue: after a minute without progress it is
`failed`, saying how far it got, and a new redrive moves the rest. Both backends."""

from __future__ import annotations

import pytest

from conveyor.broker.broker import Broker
from conveyor.broker.redrive import RUNNER_GONE_AFTER_MS, Redrive
from conveyor.clock import ManualClock
from conveyor.errors import Conflict
from tests.support.messages import send


async def test_a_redrive_without_its_runner_fails_and_a_new_one_moves_the_rest(
        broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("dlq")
    await broker.create_queue("work", {"max_receive_count": 1, "dead_letter_queue": "dlq"})
    await send(broker, "dlq", *[f"m{i}" for i in range(5)])
    task = await broker.start_redrive("dlq", "work", max_per_second=1, wait=0)
    assert task.status == "running"
    # The server dies: its runner is gone, the row still says running.
    await broker.redrive.close()
    broker.redrive = Redrive(broker)  # (a restarted server: no runner of its own)
    with pytest.raises(Conflict):
        await broker.start_redrive("dlq", "work", wait=0)
    clock.advance(RUNNER_GONE_AFTER_MS / 1000 - 5)
    assert (await broker.redrive.get(task.id)).status == "running"  # not yet: it may live
    clock.advance(10)
    [lapsed] = await broker.redrive.list("dlq")
    assert lapsed.status == "failed" and lapsed.finished_at is not None
    assert lapsed.error is not None and "start the redrive again" in lapsed.error
    again = await broker.start_redrive("dlq", "work", wait=10)
    assert again.status == "completed"
    assert (await broker.queue_stats("work")).visible == 5
    assert (await broker.redrive.get(task.id)).status == "failed"


async def test_a_live_runner_is_never_taken_for_a_lost_one(
        broker: Broker, clock: ManualClock) -> None:
    await broker.create_queue("dlq")
    await broker.create_queue("work", {"max_receive_count": 1, "dead_letter_queue": "dlq"})
    await send(broker, "dlq", *[f"m{i}" for i in range(5)])  # one a second: 4 s or more
    task = await broker.start_redrive("dlq", "work", max_per_second=1, wait=0)
    clock.advance(RUNNER_GONE_AFTER_MS / 1000 + 10)  # no save for a minute, but it is ours
    assert (await broker.redrive.get(task.id)).status == "running"
    with pytest.raises(Conflict):
        await broker.start_redrive("dlq", "work", wait=0)
