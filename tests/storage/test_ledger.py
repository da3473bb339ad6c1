"""Conformance: the delivery ledger and the suppression list."""

from __future__ import annotations

from conveyor.ledger import FINAL_STATUSES, DeliveryUpdate, NewDelivery, Suppression
from conveyor.storage.base import DeliveryPutParams, Storage

A = NewDelivery("d1", "email", "a@example.com")
B = NewDelivery("d2", "push", "endpoint-b")


async def test_put_begin_finish(storage: Storage, t0: int) -> None:
    assert await storage.delivery_put_many(DeliveryPutParams([A], "queued", 60_000, t0)) == [
        True]
    assert await storage.delivery_put_many(
        DeliveryPutParams([A, B], "queued", 60_000, t0)) == [False, True]
    assert await storage.delivery_begin_many([A, B], 60_000, t0 + 1) == ["queued", "queued"]
    await storage.delivery_finish_many([DeliveryUpdate("d1", "sent", None, "p-1"),
                                        DeliveryUpdate("d2", "retrying", "429")], t0 + 2)
    # A final row is never begun again; an unfinished one is, one attempt more.
    assert await storage.delivery_begin_many([A, B], 60_000, t0 + 3) == ["sent", "retrying"]
    d1 = await storage.delivery_get("d1", t0 + 3)
    d2 = await storage.delivery_get("d2", t0 + 3)
    assert d1 is not None and (d1.status, d1.attempts, d1.provider_id) == ("sent", 1, "p-1")
    assert d2 is not None and (d2.status, d2.attempts, d2.error) == ("sending", 2, "429")
    new = NewDelivery("d3", "email", "c@example.com")
    assert await storage.delivery_begin_many([new], 60_000, t0) == [None]
    assert await storage.delivery_counts(None, t0 + 3) == {
        "email": {"sent": 1, "sending": 1}, "push": {"sending": 1}}
    assert await storage.delivery_counts("push", t0 + 3) == {"push": {"sending": 1}}


async def test_begin_leaves_every_final_status_alone(storage: Storage, t0: int) -> None:
    rows = [NewDelivery(f"f-{status}", "email", f"{status}@example.com")
            for status in sorted(FINAL_STATUSES)]
    await storage.delivery_put_many(DeliveryPutParams(rows, "queued", 60_000, t0))
    await storage.delivery_finish_many([DeliveryUpdate(r.delivery_id, r.delivery_id[2:], None, None)
                                        for r in rows], t0 + 1)
    assert await storage.delivery_begin_many(rows, 60_000, t0 + 2) == sorted(FINAL_STATUSES)
    for row in rows:  # skipped and digested too: never `sending`, no attempt counted
        got = await storage.delivery_get(row.delivery_id, t0 + 2)
        assert got is not None and (got.status, got.attempts) == (row.delivery_id[2:], 0)


async def test_statuses_and_resends(storage: Storage, t0: int) -> None:
    await storage.delivery_put_many(DeliveryPutParams([A], "queued", 60_000, t0))
    assert await storage.delivery_statuses(["d2", "d1"]) == [None, "queued"]  # no write
    assert await storage.delivery_begin_many([A, B], 60_000, t0 + 1) == ["queued", None]
    # the worker died with both on the wire: beginning them again counts a resend each
    assert await storage.delivery_statuses(["d1", "d2"]) == ["sending", "sending"]
    assert await storage.delivery_begin_many([A], 60_000, t0 + 2) == ["sending"]
    d1 = await storage.delivery_get("d1", t0 + 2)
    d2 = await storage.delivery_get("d2", t0 + 2)
    assert d1 is not None and (d1.attempts, d1.resends) == (2, 1)
    assert d2 is not None and (d2.attempts, d2.resends) == (1, 0)
    assert await storage.delivery_resent_counts(None, t0 + 2) == {"email": 1}
    assert await storage.delivery_resent_counts("push", t0 + 2) == {}


async def test_rows_expire(storage: Storage, t0: int) -> None:
    await storage.delivery_put_many(DeliveryPutParams([A], "queued", 1_000, t0))
    await storage.delivery_put_many(DeliveryPutParams([B], "queued", 5_000, t0))
    assert await storage.delivery_get("d1", t0 + 1_000) is None
    assert await storage.delivery_expire(t0 + 1_000, 100) == 1
    assert await storage.delivery_counts(None, t0 + 1_000) == {"push": {"queued": 1}}


async def test_suppressions(storage: Storage, t0: int) -> None:
    await storage.suppression_add_many([("email", "a@x", "bounce"), ("email", "b@x", "spam"),
                                        ("push", "a@x", "gone")], t0)
    await storage.suppression_add_many([("email", "a@x", "later reason")], t0 + 1)
    assert await storage.suppression_find("email", ["a@x", "c@x", "b@x"]) == {"a@x", "b@x"}
    assert await storage.suppression_find("email", []) == set()
    listed = await storage.suppression_list(None, None, 10)
    assert listed == [Suppression("email", "a@x", "bounce", t0),
                      Suppression("email", "b@x", "spam", t0),
                      Suppression("push", "a@x", "gone", t0)]
    page = await storage.suppression_list("email", None, 1)
    assert [s.address for s in page] == ["a@x"]
    assert await storage.suppression_remove("email", "a@x")
    assert not await storage.suppression_remove("email", "a@x")
    assert await storage.suppression_find("email", ["a@x"]) == set()
