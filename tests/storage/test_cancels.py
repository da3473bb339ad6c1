"""Conformance: job cancel requests, deleting a cancelled job's message unless in flight, and
receives that pass over some message groups (per-key limited jobs)."""

from __future__ import annotations

import dataclasses

from conveyor.storage.base import MessageRetryParams, Storage
from tests.storage.conftest import make_queue, send
from tests.storage.test_messages import lease, receive


async def test_requests_are_found_until_they_expire(storage: Storage, second: Storage,
                                                    t0: int) -> None:
    await storage.cancel_put("job-a", 10_000, t0)
    await storage.cancel_put("job-b", 5_000, t0)
    await second.cancel_put("job-b", 1_000, t0 + 1)  # a repeat never shortens it
    found = await second.cancel_find(["job-a", "job-b", "job-c"], t0 + 4_999)
    assert sorted(found) == ["job-a", "job-b"]
    assert await storage.cancel_find(["job-b"], t0 + 5_000) == []
    assert await storage.cancel_find([], t0) == []
    assert await storage.cancel_expire(t0 + 5_000, 100) == 1  # job-b
    assert await storage.cancel_find(["job-a"], t0 + 9_999) == ["job-a"]
    assert await storage.cancel_expire(t0 + 20_000, 100) == 1
    assert await storage.cancel_expire(t0 + 20_000, 100) == 0


async def test_delete_queued_spares_messages_in_flight(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    other = await make_queue(storage, "other", t0)
    waiting, running, delayed = await send(storage, queue, t0, ["w", "r", "d"])
    [later] = await send(storage, queue, t0, ["later"], delays_ms=[60_000])
    got = await storage.message_receive(receive(queue, t0, limit=3))
    assert [m.id for m in got] == [waiting, running, delayed]
    # w: lease lapsed (queued again); r: in flight; d: between retries (delayed, unleased)
    assert await storage.message_retry(MessageRetryParams(queue.id, lease(got[2]), 5_000,
                                                          "boom", t0))
    at = t0 + 30_000  # w's and r's leases (30 s) lapse now: extend r's first
    assert await storage.message_change_visibility_many(
        queue.id, [(lease(got[1]), 60_000)], t0 + 1) == {lease(got[1])}
    assert await storage.message_delete_queued(other.id, [waiting], at) == []  # wrong queue
    deleted = await storage.message_delete_queued(
        queue.id, [waiting, running, delayed, later], at)
    assert sorted(deleted) == sorted([waiting, delayed, later])
    assert await storage.message_delete_queued(queue.id, [waiting], at) == []  # gone
    stats = await storage.queue_stats(queue.id, at)
    assert (stats.visible, stats.in_flight, stats.delayed) == (0, 1, 0)


async def test_receive_passes_over_skipped_groups(storage: Storage, t0: int) -> None:
    """Per-key limited jobs (conveyor.worker.keys): a receive can pass over the messages
    of full keys (their group ids) to reach the others behind them."""
    queue = await make_queue(storage, "keyed", t0)
    a = await send(storage, queue, t0, ["a1", "a2", "a3"], groups=["A", "A", "A"])
    b = await send(storage, queue, t0 + 1, ["b1"], groups=["B"])
    [plain] = await send(storage, queue, t0 + 2, ["p"])
    got = await storage.message_receive(dataclasses.replace(
        receive(queue, t0 + 5, limit=2), skip_groups=("A",)))
    assert [m.id for m in got] == [b[0], plain] and got[0].group_id == "B"
    rest = await storage.message_receive(receive(queue, t0 + 5))  # no skip: A's turn
    assert [m.id for m in rest] == a
