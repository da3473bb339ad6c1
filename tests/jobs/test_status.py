"""Job statuses: set, get, count, expire."""

from __future__ import annotations

import pytest

from conveyor.broker.broker import Broker
from conveyor.broker.job_system import JobStatus
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput, TooManyEntries
from conveyor.jobs import JOB_STATUSES


async def test_set_then_get(broker: Broker, clock: ManualClock) -> None:
    await broker.jobs.status_set("j1", "running", queue="emails", task="send_welcome",
                                 attempts=1)
    assert await broker.jobs.status_get("j1") == JobStatus(
        "j1", "running", "emails", "send_welcome", 1, None, None, 86_400, clock.ms,
        created_at=clock.ms)
    clock.advance(3)
    result = {"sent": True, "ids": [1, 2], "note": "é", "n": None}
    await broker.jobs.status_set("j1", "succeeded", queue="emails", task="send_welcome",
                                 attempts=1, result=result, keep_seconds=60)
    found = await broker.jobs.status_get("j1")
    assert found is not None
    assert (found.status, found.result, found.keep_seconds, found.updated_at) == (
        "succeeded", result, 60, clock.ms)
    assert await broker.jobs.status_get("unknown") is None


@pytest.mark.parametrize("result", [0, "text", [1, "a"], 1.5, False])
async def test_any_json_result_comes_back(broker: Broker, result: object) -> None:
    await broker.jobs.status_set("r", "succeeded", queue="q", result=result)
    found = await broker.jobs.status_get("r")
    assert found is not None and found.result == result


async def test_a_batch_in_one_call(broker: Broker) -> None:
    await broker.jobs.status_set_many([
        JobStatus("a", "queued", "q1"),
        JobStatus("b", "running", "q1", attempts=1),
        JobStatus("a", "failed", "q1", error="boom", attempts=2),  # further along: it wins
        JobStatus("c", "dead", "q2", error="gave up", attempts=5),
    ])
    a = await broker.jobs.status_get("a")
    assert a is not None and (a.status, a.error, a.attempts) == ("failed", "boom", 2)
    await broker.jobs.status_set_many([])  # nothing to do


async def test_a_write_behind_the_recorded_progress_changes_nothing(broker: Broker) -> None:
    async def now() -> tuple[str, int]:
        found = await broker.jobs.status_get("j")
        assert found is not None
        return found.status, found.attempts

    set_many = broker.jobs.status_set_many
    await set_many([JobStatus("j", "running", "q", attempts=1)])
    await set_many([JobStatus("j", "queued", "q")])  # the producer's write, landing late
    assert await now() == ("running", 1)
    await set_many([JobStatus("j", "retrying", "q", attempts=1, error="timeout")])
    await set_many([JobStatus("j", "running", "q", attempts=1)])  # an earlier batch, late
    assert await now() == ("retrying", 1)
    await set_many([JobStatus("j", "running", "q", attempts=2)])
    await set_many([JobStatus("j", "succeeded", "q", attempts=2)])
    await set_many([JobStatus("j", "retrying", "q", attempts=1)])  # a worker whose lease lapsed
    assert await now() == ("succeeded", 2)
    # Within one batch the same rule holds in order.
    await set_many([JobStatus("k", "succeeded", "q", attempts=1),
                    JobStatus("k", "running", "q", attempts=1)])
    found = await broker.jobs.status_get("k")
    assert found is not None and found.status == "succeeded"


async def test_a_dead_job_takes_only_a_write_that_starts_it_over(broker: Broker,
                                                                    clock: ManualClock) -> None:
    async def now() -> tuple[str, int]:
        found = await broker.jobs.status_get("d")
        assert found is not None
        return found.status, found.attempts

    t = clock.ms
    run = {"worker": "w", "started_at": t}
    await broker.jobs.status_set_many([JobStatus("d", "running", "q", attempts=1, **run)])
    await broker.jobs.status_set_many([JobStatus("d", "dead", "q", attempts=2, error="x",
                                                 worker="v", started_at=t + 1, ended_at=t + 2)])
    # A worker whose lease lapsed: its attempt 1 ends late. So would a report of it.
    await broker.jobs.status_set_many([JobStatus("d", "retrying", "q", attempts=1, error="y",
                                                 ended_at=t + 3, **run)])
    await broker.jobs.status_set_many([JobStatus("d", "running", "q", attempts=1,
                                                 progress={"done": 1})])
    assert await now() == ("dead", 2)
    # A redrive runs attempt 1 again: a new run, with its start and end in one batch.
    await broker.jobs.status_set_many([
        JobStatus("d", "running", "q", attempts=1, worker="u", started_at=t + 10),
        JobStatus("d", "succeeded", "q", attempts=1, worker="u", started_at=t + 10,
                  ended_at=t + 11)])
    assert await now() == ("succeeded", 1)
    # Within one batch the same rule holds: dead, then a late write of an earlier run.
    await broker.jobs.status_set_many([
        JobStatus("e", "dead", "q", attempts=2, worker="v", started_at=t, ended_at=t + 1),
        JobStatus("e", "retrying", "q", attempts=1, error="late")])
    found = await broker.jobs.status_get("e")
    assert found is not None and (found.status, found.attempts) == ("dead", 2)
    # A retry from the job explorer writes `queued`.
    await broker.jobs.status_set_many([JobStatus("e", "queued", "q")])
    found = await broker.jobs.status_get("e")
    assert found is not None and found.status == "queued"


async def test_counts_per_queue_and_in_all(broker: Broker) -> None:
    await broker.jobs.status_set_many(
        [JobStatus(f"s{i}", "succeeded", "q1") for i in range(3)]
        + [JobStatus("f", "failed", "q1"), JobStatus("r", "retrying", "q2")])
    counts = await broker.jobs.status_counts("q1")
    assert list(counts) == list(JOB_STATUSES)
    assert counts == {**dict.fromkeys(JOB_STATUSES, 0), "succeeded": 3, "failed": 1}
    everything = await broker.jobs.status_counts()
    assert (everything["succeeded"], everything["failed"], everything["retrying"]) == (3, 1, 1)
    assert sum((await broker.jobs.status_counts("empty")).values()) == 0


async def test_statuses_expire_after_their_keep_time(broker: Broker,
                                                     clock: ManualClock) -> None:
    await broker.jobs.status_set("short", "succeeded", queue="q", keep_seconds=10)
    await broker.jobs.status_set("long", "succeeded", queue="q", keep_seconds=100)
    clock.advance(10)
    assert await broker.jobs.status_get("short") is None  # gone at once, swept or not
    assert (await broker.jobs.status_counts("q"))["succeeded"] == 1
    assert await broker.jobs.expire() == 1
    clock.advance(100)
    await broker.sweep()  # the broker's sweep drops them too
    assert await broker.jobs.expire() == 0
    assert await broker.jobs.status_get("long") is None


async def test_a_long_error_is_cut(broker: Broker) -> None:
    await broker.jobs.status_set("e", "failed", queue="q", error="x" * 100_000)
    found = await broker.jobs.status_get("e")
    assert found is not None and found.error is not None
    assert len(found.error) == 16_384 and found.error.endswith("…")


@pytest.mark.parametrize(("change", "field"), [
    ({"job_id": ""}, "job_id"),
    ({"status": "done"}, "status"),
    ({"queue": "no spaces"}, "queue"),
    ({"task": ""}, "task"),
    ({"attempts": -1}, "attempts"),
    ({"keep_seconds": 366 * 86_400}, "keep_seconds"),
    ({"result": {1, 2}}, "result"),
    ({"result": "x" * 1_048_577}, "result"),
    ({"error": 5}, "error"),
])
async def test_set_checks_every_entry_first(sqlite_broker: Broker, change: dict[str, object],
                                            field: str) -> None:
    good = {"job_id": "ok", "status": "queued", "queue": "q"}
    bad = {**good, "job_id": "bad", **change}
    with pytest.raises(InvalidInput) as info:
        await sqlite_broker.jobs.status_set_many(
            [JobStatus(**good), JobStatus(**bad)])  # type: ignore[arg-type]
    assert (info.value.field, info.value.index) == (field, 1)
    assert await sqlite_broker.jobs.status_get("ok") is None  # nothing half-applied


async def test_batches_are_bounded(sqlite_broker: Broker) -> None:
    with pytest.raises(TooManyEntries):
        await sqlite_broker.jobs.status_set_many(
            [JobStatus(str(i), "queued", "q") for i in range(1001)])
    with pytest.raises(InvalidInput, match="queue"):
        await sqlite_broker.jobs.status_counts("bad queue")
