"""Conformance: digests (one open window per recipient and key, events joining it once,
leased release) and quiet-hour holds (held messages re-timed), on both backends."""

from __future__ import annotations

import orjson

from conveyor.digests import DigestTarget, targets_json
from conveyor.storage.base import DigestAddParams, HoldRow, Storage
from tests.storage.conftest import make_queue, send
from tests.storage.test_messages import receive

TARGETS = targets_json([DigestTarget("email", "ann@example.com", "ann@example.com")])


def event(event_id: str, now: int, *, key: str = "comments", digest_id: str = "d1",
          window_ms: int = 60_000) -> DigestAddParams:
    return DigestAddParams(digest_id, "ann", key, "social", "digest", window_ms, event_id,
                           orjson.dumps({"n": event_id}).decode(), TARGETS, now)


async def test_events_join_the_open_digest_once(storage: Storage, t0: int) -> None:
    first, fresh = await storage.digest_add(event("e1", t0))
    assert fresh and first is not None
    assert (first.id, first.state, first.events, first.release_at, first.created_at) == (
        "d1", "open", 1, t0 + 60_000, t0)
    # Another event inside the window joins it (the digest id offered is not used) ...
    second, fresh = await storage.digest_add(event("e2", t0 + 10, digest_id="d2"))
    assert fresh and second is not None and (second.id, second.events) == ("d1", 2)
    # ... the same event again joins nothing; another key opens its own digest.
    again, fresh = await storage.digest_add(event("e1", t0 + 20, digest_id="d3"))
    assert not fresh and again is not None and (again.id, again.events) == ("d1", 2)
    other, _ = await storage.digest_add(event("e3", t0 + 30, key="likes", digest_id="d4"))
    assert other is not None and other.id == "d4"
    assert [d.id for d in await storage.digest_list("ann")] == ["d1", "d4"]
    events = await storage.digest_events("d1")
    assert [(e.event_id, e.data, e.created_at) for e in events] == [
        ("e1", {"n": "e1"}, t0), ("e2", {"n": "e2"}, t0 + 10)]
    assert events[0].targets == (DigestTarget("email", "ann@example.com", "ann@example.com"),)


async def test_claim_lease_finish(storage: Storage, t0: int) -> None:
    await storage.digest_add(event("e1", t0))
    assert await storage.digest_claim(t0 + 59_999, 5_000, 10) == []
    (claimed,) = await storage.digest_claim(t0 + 60_000, 5_000, 10)
    assert (claimed.id, claimed.state, claimed.lease_until) == ("d1", "closing", t0 + 65_000)
    # Leased: nobody else gets it; an event now opens a new window.
    assert await storage.digest_claim(t0 + 64_999, 5_000, 10) == []
    fresh, _ = await storage.digest_add(event("e2", t0 + 61_000, digest_id="d2"))
    assert fresh is not None and (fresh.id, fresh.state) == ("d2", "open")
    # The releaser died: its lease lapses and another takes the digest over; the first
    # one's finish then does nothing.
    (again,) = await storage.digest_claim(t0 + 65_000, 5_000, 10)
    assert (again.id, again.lease_until) == ("d1", t0 + 70_000)
    assert not await storage.digest_finish("d1", claimed.lease_until)
    assert await storage.digest_finish("d1", again.lease_until)
    assert await storage.digest_events("d1") == []
    assert [d.id for d in await storage.digest_list("ann")] == ["d2"]


async def test_a_due_digest_not_yet_claimed_takes_no_more_events(storage: Storage,
                                                                 t0: int) -> None:
    await storage.digest_add(event("e1", t0))
    late, _ = await storage.digest_add(event("e2", t0 + 60_000, digest_id="d2"))
    assert late is not None and (late.id, late.events) == ("d2", 1)
    states = {d.id: (d.state, d.lease_until) for d in await storage.digest_list("ann")}
    assert states == {"d1": ("closing", 0), "d2": ("open", 0)}
    assert [d.id for d in await storage.digest_claim(t0 + 60_000, 5_000, 10)] == ["d1"]


async def test_holds_retime_waiting_messages_only(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "notify-email", t0)
    waiting, taken, other = await send(storage, queue, t0, ["a", "b", "c"],
                                       delays_ms=[3_600_000, 3_600_000, 3_600_000])
    await storage.hold_add_many([HoldRow("ann", queue.id, waiting, t0 + 3_600_000),
                                 HoldRow("ann", queue.id, taken, t0 + 3_600_000),
                                 HoldRow("bob", queue.id, other, t0 + 3_600_000)])
    assert await storage.hold_retime("ann", t0 + 3_600_000, t0) == 2  # the same time
    assert await storage.message_receive(receive(queue, t0 + 1_000)) == []
    # Ann's quiet hours end earlier now: both of her held messages become visible then.
    assert await storage.hold_retime("ann", t0 + 1_000, t0) == 2
    got = await storage.message_receive(receive(queue, t0 + 1_000, limit=1))
    assert [m.id for m in got] in ([waiting], [taken])
    # The one received is left alone by a later retime; the other moves again.
    assert await storage.hold_retime("ann", t0 + 9_000, t0 + 500) == 1
    assert await storage.message_receive(receive(queue, t0 + 8_999)) == []
    assert len(await storage.message_receive(receive(queue, t0 + 9_000))) == 1
    assert await storage.hold_expire(t0 + 9_000, 10) == 2  # ann's two, released
    assert await storage.hold_expire(t0 + 3_600_000, 10) == 1
    assert await storage.hold_retime("ann", t0 + 20_000, t0 + 10_000) == 0
