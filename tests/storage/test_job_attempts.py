"""The job explorer's storage on both dialects: attempt history written with the status
batch, the first write's key/args/created_at kept, list filters by key and creation time,
and attempts that go with their status (delete, expiry)."""

from __future__ import annotations

from conveyor.storage.base import AttemptRow, JobListParams, JobRow, Storage


def row(job_id: str, status: str, step: int, *, key: str | None = None,
        args: str | None = None, keep: int = 60) -> JobRow:
    return JobRow(job_id, status, "q", "t", step // 4, None, None, keep, step, None, key,
                  args)


def params(now: int, **given: object) -> JobListParams:
    base: dict[str, object] = {"status": None, "task": None, "queue": None,
                               "updated_since": None, "updated_until": None, "after": None,
                               "limit": 50, "now": now}
    return JobListParams(**{**base, **given})  # type: ignore[arg-type]


async def test_attempts_ride_on_the_status_batch(storage: Storage, t0: int) -> None:
    start = AttemptRow("j", 1, t0 - 50, "w1", None, "running", None, None)
    await storage.job_put_many([row("j", "running", 5, key="k", args='{"args":[1]}')], t0,
                               [start])
    [a] = await storage.job_attempts("j")
    assert (a.attempt, a.started_at, a.worker, a.ended_at, a.outcome) == (
        1, t0 - 50, "w1", None, "running")
    end = AttemptRow("j", 1, t0 - 50, "w1", t0 + 10, "retrying", "E: boom", "Traceback…")
    second = AttemptRow("j", 2, t0 + 20, "w2", t0 + 30, "succeeded", None, None)
    await storage.job_put_many([row("j", "succeeded", 11)], t0 + 40, [end, second])
    found = await storage.job_attempts("j")
    assert [(a.attempt, a.outcome, a.error, a.traceback, a.ended_at) for a in found] == [
        (1, "retrying", "E: boom", "Traceback…", t0 + 10), (2, "succeeded", None, None, t0 + 30)]
    # A start arriving after its end (a reordered batch) changes nothing: an end is final.
    await storage.job_put_many([row("j", "running", 9)], t0 + 50,
                               [AttemptRow("j", 2, t0 + 20, "w2", None, "running", None, None)])
    assert (await storage.job_attempts("j"))[1].outcome == "succeeded"
    status = await storage.job_get("j", t0 + 60)
    assert status is not None
    assert (status.key, status.args, status.created_at) == ("k", {"args": [1]}, t0)


async def test_list_by_key_and_creation_time(storage: Storage, t0: int) -> None:
    await storage.job_put_many([row("a", "queued", 0, key="k1")], t0)
    await storage.job_put_many([row("b", "queued", 0, key="k2")], t0 + 1000)
    await storage.job_put_many([row("c", "queued", 0)], t0 + 2000)
    await storage.job_put_many([row("a", "succeeded", 7)], t0 + 3000)  # created stays t0
    now = t0 + 4000
    assert [j.job_id for j in await storage.job_list(params(now, key="k1"))] == ["a"]
    assert [j.job_id for j in await storage.job_list(params(now, key="k2", status="queued"))
            ] == ["b"]
    assert await storage.job_list(params(now, key="k1", status="queued")) == []
    got = await storage.job_list(params(now, created_since=t0 + 500, created_until=t0 + 2500))
    assert [j.job_id for j in got] == ["c", "b"]
    got = await storage.job_list(params(now, status="succeeded", created_until=t0 + 1))
    assert [(j.job_id, j.key, j.created_at) for j in got] == [("a", "k1", t0)]


async def test_attempts_go_with_their_status(storage: Storage, t0: int) -> None:
    for job_id, keep in (("gone", 1), ("kept", 600), ("deleted", 600)):
        await storage.job_put_many([row(job_id, "dead", 7, keep=keep)], t0, [
            AttemptRow(job_id, 1, t0, "w", t0 + 1, "dead", "E", "tb")])
    assert await storage.job_delete_many(["deleted"]) == 1
    assert await storage.job_expire(t0 + 5_000, 100) == 1
    assert await storage.job_attempts("gone") == []
    assert await storage.job_attempts("deleted") == []
    assert [a.outcome for a in await storage.job_attempts("kept")] == ["dead"]


async def test_a_late_write_of_an_older_attempt_leaves_a_dead_job_dead(storage: Storage,
                                                                      t0: int) -> None:
    """Worker A starts attempt 1 and freezes past its lease; B runs attempt 2, which
    dead-letters the job; then A wakes and reports its attempt-1 failure. Only a new
    attempt (a redrive runs attempt 1 again, under a new start) or a retry's `queued`
    reopens a dead job."""
    a1 = AttemptRow("j", 1, t0, "A", None, "running", None, None)
    await storage.job_put_many([row("j", "running", 5)], t0, [a1])
    b2 = AttemptRow("j", 2, t0 + 4_000, "B", None, "running", None, None)
    await storage.job_put_many([row("j", "running", 9)], t0 + 4_000, [b2])
    await storage.job_put_many([row("j", "dead", 11)], t0 + 6_000,
                               [b2._replace(ended_at=t0 + 6_000, outcome="dead")])

    async def now() -> tuple[str, int]:
        found = await storage.job_get("j", t0 + 30_000)
        assert found is not None
        return found.status, found.attempts

    a1_end = a1._replace(ended_at=t0 + 9_000, outcome="retrying", error="E: late")
    await storage.job_put_many([row("j", "retrying", 6)], t0 + 9_000, [a1_end])
    assert await now() == ("dead", 2)
    # Nor a late start or progress report of a recorded attempt (none carries a new one).
    await storage.job_put_many([row("j", "running", 9)], t0 + 9_001, [b2])
    await storage.job_put_many([row("j", "running", 5)], t0 + 9_002)
    assert await now() == ("dead", 2)
    # A's attempt still ends in the history: it did run, and failed.
    assert [(a.attempt, a.worker, a.outcome) for a in await storage.job_attempts("j")] == [
        (1, "A", "retrying"), (2, "B", "dead")]
    # A redrive: attempt 1 again, a start no attempt row has. Its start and end may come
    # in one batch (a fast job), as the end only.
    redriven = AttemptRow("j", 1, t0 + 20_000, "C", t0 + 20_050, "succeeded", None, None)
    await storage.job_put_many([row("j", "succeeded", 7)], t0 + 20_100, [redriven])
    assert await now() == ("succeeded", 1)


async def test_a_dead_job_takes_a_new_run_or_a_retry(storage: Storage, t0: int) -> None:
    dead = AttemptRow("d", 2, t0, "B", t0 + 10, "dead", "E", None)
    for job_id in ("redriven", "retried"):
        await storage.job_put_many([row(job_id, "dead", 11)], t0 + 10,
                                   [dead._replace(job_id=job_id)])
    again = AttemptRow("redriven", 1, t0 + 1_000, "C", None, "running", None, None)
    await storage.job_put_many([row("redriven", "running", 5)], t0 + 1_000, [again])
    await storage.job_put_many([row("retried", "queued", 0)], t0 + 1_000)  # the explorer's
    found = [await storage.job_get(j, t0 + 2_000) for j in ("redriven", "retried")]
    assert [(s.status, s.attempts) if s else None for s in found] == [
        ("running", 1), ("queued", 0)]
