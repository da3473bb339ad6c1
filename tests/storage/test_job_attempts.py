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
