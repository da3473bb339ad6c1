"""Conformance: rate limits, slots, cron ticks and job statuses (see also test_seam.py)."""

from __future__ import annotations

import orjson

from conveyor.broker.job_system import progress
from conveyor.storage.base import (
    JobListParams,
    JobRow,
    RateTakeParams,
    SlotAcquireParams,
    SlotRenewParams,
    Storage,
)


def row(job_id: str, status: str, attempts: int = 1, *, queue: str = "q",
        keep_seconds: int = 60, result: object = None) -> JobRow:
    return JobRow(job_id, status, queue, "task", attempts, None,
                  None if result is None else orjson.dumps(result).decode(), keep_seconds,
                  progress(status, attempts))


async def test_rate_penalty_holds_and_never_shortens(storage: Storage, t0: int) -> None:
    take = RateTakeParams("k", 100.0, 5, 1, t0)
    assert (await storage.rate_take(take)).granted == 1
    await storage.rate_penalize("k", 10_000, t0)
    await storage.rate_penalize("k", 1_000, t0)  # shorter: the longer one stays
    blocked = await storage.rate_take(RateTakeParams("k", 100.0, 5, 1, t0 + 5_000))
    assert (blocked.granted, blocked.blocked_until) == (0, t0 + 10_000)
    assert (await storage.rate_take(RateTakeParams("k", 100.0, 5, 5, t0 + 10_000))).granted == 5


async def test_rate_expire_drops_only_full_unpenalized_buckets(storage: Storage,
                                                               t0: int) -> None:
    await storage.rate_take(RateTakeParams("full-soon", 100.0, 5, 5, t0))  # tat t0 + 500
    await storage.rate_penalize("penalized", 60_000, t0)
    assert await storage.rate_expire(t0 + 400, 100) == 0
    assert await storage.rate_expire(t0 + 501, 100) == 1
    # The bucket that went is as if never used: a full burst again.
    again = await storage.rate_take(RateTakeParams("full-soon", 100.0, 5, 9, t0 + 501))
    assert again.granted == 5
    # Both full (re-taken full-soon at t0 + 1001) and the penalty over: both go.
    assert await storage.rate_expire(t0 + 60_001, 100) == 2


async def test_slots(storage: Storage, t0: int) -> None:
    assert await storage.slot_acquire(SlotAcquireParams("k", "a", 3, 2, 1_000, t0)) == 2
    assert await storage.slot_acquire(SlotAcquireParams("k", "b", 3, 2, 1_000, t0)) == 1
    assert await storage.slot_acquire(SlotAcquireParams("k", "c", 3, 1, 1_000, t0)) == 0
    assert await storage.slot_renew(SlotRenewParams("k", "a", 5_000, t0 + 500)) == 2
    await storage.slot_release("k", "a", 1)
    assert await storage.slot_acquire(SlotAcquireParams("k", "c", 3, 5, 1_000, t0 + 500)) == 1
    # b's lease lapses at t0 + 1000: its slot comes back, and its renew says 0.
    assert await storage.slot_renew(SlotRenewParams("k", "b", 1_000, t0 + 1_000)) == 0
    assert await storage.slot_acquire(
        SlotAcquireParams("k", "c", 3, 5, 1_000, t0 + 1_000)) == 1
    # Lapsed rows (c's at t0+2000, b's) and a released-to-zero one go; a's live row stays.
    await storage.slot_release("k", "a", 5)
    assert await storage.slot_expire(t0 + 2_000, 100) == 3
    assert await storage.slot_expire(t0 + 2_000, 100) == 0


async def test_cron_claims_once_and_expires(storage: Storage, t0: int) -> None:
    assert await storage.cron_claim("nightly", 1_000, t0)
    assert not await storage.cron_claim("nightly", 1_000, t0 + 1)
    assert await storage.cron_claim("nightly", 2_000, t0 + 1)
    assert await storage.cron_expire(10_000, t0 + 10_000, 100) == 0  # not older than keep
    assert await storage.cron_expire(10_000, t0 + 10_001, 100) == 1
    assert await storage.cron_expire(10_000, t0 + 10_002, 100) == 1
    assert await storage.cron_claim("nightly", 1_000, t0 + 10_002)  # forgotten: again


async def test_job_statuses(storage: Storage, t0: int) -> None:
    await storage.job_put_many([row("j1", "queued", 0), row("j2", "running", result=[1])], t0)
    j1 = await storage.job_get("j1", t0)
    assert j1 is not None and (j1.status, j1.attempts, j1.updated_at) == ("queued", 0, t0)
    j2 = await storage.job_get("j2", t0)
    assert j2 is not None and j2.result == [1] and j2.task == "task" and j2.keep_seconds == 60
    # A write behind the stored progress is ignored; one ahead replaces it.
    await storage.job_put_many([row("j2", "queued", 0), row("j1", "succeeded", 1)], t0 + 1)
    after = [await storage.job_get(j, t0 + 1) for j in ("j1", "j2")]
    assert [(s.status if s else None) for s in after] == ["succeeded", "running"]
    # A dead job takes any write (a redrive starts it over).
    await storage.job_put_many([row("j3", "dead", 5)], t0)
    await storage.job_put_many([row("j3", "queued", 0)], t0 + 2)
    j3 = await storage.job_get("j3", t0 + 2)
    assert j3 is not None and j3.status == "queued"
    await storage.job_put_many([row("other", "queued", 0, queue="other", keep_seconds=10)],
                               t0)
    assert await storage.job_counts("q", t0 + 2) == {"succeeded": 1, "running": 1,
                                                      "queued": 1}
    assert await storage.job_counts(None, t0 + 2) == {"succeeded": 1, "running": 1,
                                                       "queued": 2}
    # Rows expire keep_seconds after their last write.
    assert await storage.job_get("other", t0 + 10_000) is None
    assert await storage.job_expire(t0 + 10_000, 100) == 1
    assert await storage.job_counts(None, t0 + 10_000) == {"succeeded": 1, "running": 1,
                                                           "queued": 1}
    # An ignored write does not extend the row: j2 goes at t0 + 60 s, j1 a moment later.
    assert await storage.job_expire(t0 + 60_000, 100) == 1
    assert await storage.job_get("j1", t0 + 60_000) is not None


async def test_job_list_filters_and_pages_newest_first(storage: Storage, t0: int) -> None:
    await storage.job_put_many([row("a", "dead", 3), row("b", "queued", 0)], t0)
    await storage.job_put_many([row("c", "dead", 2, queue="other")], t0 + 5)
    await storage.job_put_many([row("d", "succeeded", 1), row("e", "dead", 4)], t0 + 10)

    def listing(**given: object) -> JobListParams:
        fields: dict[str, object] = {
            "status": None, "task": None, "queue": None, "updated_since": None,
            "updated_until": None, "after": None, "limit": 100, "now": t0 + 20}
        fields.update(given)
        return JobListParams(**fields)  # type: ignore[arg-type]

    everything = await storage.job_list(listing())
    assert [j.job_id for j in everything] == ["e", "d", "c", "b", "a"]
    dead = await storage.job_list(listing(status="dead"))
    assert [j.job_id for j in dead] == ["e", "c", "a"]
    assert [j.job_id for j in await storage.job_list(listing(queue="other"))] == ["c"]
    assert await storage.job_list(listing(task="nothing")) == []
    window = await storage.job_list(listing(updated_since=t0 + 5, updated_until=t0 + 10))
    assert [j.job_id for j in window] == ["c"]
    # Keyset pages: each starts strictly after the last row of the one before.
    first = await storage.job_list(listing(limit=2))
    assert [j.job_id for j in first] == ["e", "d"]
    last = first[-1]
    assert last.updated_at is not None
    rest = await storage.job_list(listing(limit=2, after=(last.updated_at, last.job_id)))
    assert [j.job_id for j in rest] == ["c", "b"]
    # Expired rows are not listed; deleted ones are gone.
    assert await storage.job_list(listing(now=t0 + 60_010)) == []
    assert await storage.job_delete_many(["a", "e", "missing"]) == 2
    assert [j.job_id for j in await storage.job_list(listing())] == ["d", "c", "b"]
