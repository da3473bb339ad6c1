"""Conformance: worker heartbeat rows, and job counts by queue and task."""

from __future__ import annotations

import orjson

from conveyor.broker.job_system import progress
from conveyor.heartbeats import DURATION_BUCKETS
from conveyor.storage.base import JobRow, Storage, WorkerPutParams

BUCKETS = [0] * (len(DURATION_BUCKETS) + 1)


def beat(worker_id: str, now: int, *, ttl_ms: int = 10_000, running: int = 0,
         runs: int = 0) -> WorkerPutParams:
    detail = {"ttl_seconds": ttl_ms / 1000, "schedules": [
        {"name": "t|every 5000 ms", "task": "t", "queue": "q", "schedule": "every 5 s",
         "next_run_at": now + 5000}],
        "counts": [{"queue": "q", "task": "t", "runs": runs, "failures": 1, "retries": 1,
                    "seconds": 0.5, "buckets": BUCKETS}]}
    return WorkerPutParams(worker_id, "host-a", 4242, orjson.dumps(["q", "r"]).decode(), 8,
                           running, orjson.dumps(detail).decode(), ttl_ms, now)


async def test_a_beat_is_listed_until_its_ttl(storage: Storage, t0: int) -> None:
    await storage.worker_put(beat("w1", t0, running=3, runs=7))
    [w] = await storage.worker_list(t0 + 1)
    assert (w.worker_id, w.host, w.pid, w.queues, w.concurrency, w.running) == (
        "w1", "host-a", 4242, ("q", "r"), 8, 3)
    assert (w.started_at, w.beat_at, w.expires_at, w.ttl_seconds) == (
        t0, t0, t0 + 10_000, 10.0)
    assert w.schedules[0].next_run_at == t0 + 5000 and w.schedules[0].schedule == "every 5 s"
    assert (w.counts[0].runs, w.counts[0].failures, len(w.counts[0].buckets)) == (
        7, 1, len(BUCKETS))
    assert await storage.worker_list(t0 + 9_999) != []
    assert await storage.worker_list(t0 + 10_000) == []  # expired: gone from listings


async def test_later_beats_replace_and_keep_the_start(storage: Storage, second: Storage,
                                                      t0: int) -> None:
    await storage.worker_put(beat("w1", t0))
    await second.worker_put(beat("w2", t0 + 1))
    await storage.worker_put(beat("w1", t0 + 5_000, running=2, runs=9))
    found = await second.worker_list(t0 + 6_000)
    assert [w.worker_id for w in found] == ["w1", "w2"]  # by start time
    w1 = found[0]
    assert (w1.started_at, w1.beat_at, w1.expires_at, w1.running, w1.counts[0].runs) == (
        t0, t0 + 5_000, t0 + 15_000, 2, 9)
    # A beat after the row expired (not yet swept) starts the worker over.
    await storage.worker_put(beat("w2", t0 + 20_000))
    w2 = next(w for w in await storage.worker_list(t0 + 20_000) if w.worker_id == "w2")
    assert w2.started_at == t0 + 20_000


async def test_delete_and_expire(storage: Storage, t0: int) -> None:
    await storage.worker_put(beat("gone", t0, ttl_ms=1_000))
    await storage.worker_put(beat("live", t0, ttl_ms=60_000))
    await storage.worker_put(beat("stopped", t0, ttl_ms=60_000))
    assert await storage.worker_delete("stopped") is True
    assert await storage.worker_delete("stopped") is False
    assert await storage.worker_expire(t0 + 999, 100) == 0
    assert await storage.worker_expire(t0 + 1_000, 100) == 1
    assert [w.worker_id for w in await storage.worker_list(t0 + 1_000)] == ["live"]
    assert await storage.worker_expire(t0 + 60_000, 100) == 1


async def test_job_counts_by_task(storage: Storage, t0: int) -> None:
    def row(job_id: str, status: str, queue: str, task: str | None,
            keep: int = 60) -> JobRow:
        return JobRow(job_id, status, queue, task, 1, None, None, keep, progress(status, 1))

    await storage.job_put_many([
        row("a", "succeeded", "q", "send"), row("b", "succeeded", "q", "send"),
        row("c", "dead", "q", "send"), row("d", "queued", "r", "send"),
        row("e", "queued", "q", None), row("f", "queued", "q", "old", keep=1)], t0)
    assert await storage.job_counts_by_task(t0 + 1_000) == {
        ("q", "send", "succeeded"): 2, ("q", "send", "dead"): 1, ("r", "send", "queued"): 1,
        ("q", "", "queued"): 1}
