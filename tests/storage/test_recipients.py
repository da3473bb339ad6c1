"""Conformance: recipients (one row per person; batches upsert in one transaction)."""

from __future__ import annotations

from conveyor.recipients import parse_recipient
from conveyor.storage.base import Storage

ANN = parse_recipient("ann", {
    "timezone": "Europe/Berlin", "locale": "de-DE",
    "addresses": {"email": ["ann@example.com"], "fcm": ["tok-1", "tok-2"],
                  "push": [{"endpoint": "https://push.example/1",
                            "keys": {"p256dh": "P", "auth": "A"}}]},
    "preferences": {"marketing": {"email": False}, "digest": {"push": True}},
    "quiet_hours": {"start": "22:00", "end": "07:00"}})
BOB = parse_recipient("bob", {"addresses": {"apns": "0b" * 32}})


async def test_put_get_replace_delete(storage: Storage, t0: int) -> None:
    assert await storage.recipient_count() == 0
    assert await storage.recipient_get("ann") is None
    await storage.recipient_put_many([ANN, BOB], t0)
    got = await storage.recipient_get("ann")
    assert got is not None and got.updated_at == t0
    assert (got.timezone, got.locale, got.addresses, got.preferences, got.quiet_hours) == (
        ANN.timezone, ANN.locale, ANN.addresses, ANN.preferences, ANN.quiet_hours)
    bob = await storage.recipient_get("bob")
    assert bob is not None and bob.addresses == {"apns": ("0b" * 32,)}
    assert bob.quiet_hours is None and bob.timezone == "UTC"
    assert await storage.recipient_count() == 2
    # Replacing is whole: fields left out take their defaults.
    await storage.recipient_put_many([parse_recipient("ann", {"locale": "fr"})], t0 + 5)
    again = await storage.recipient_get("ann")
    assert again is not None and (again.locale, again.addresses, again.quiet_hours,
                                  again.updated_at) == ("fr", {}, None, t0 + 5)
    assert await storage.recipient_count() == 2
    assert await storage.recipient_delete("ann")
    assert not await storage.recipient_delete("ann")
    assert await storage.recipient_get("ann") is None
    assert await storage.recipient_count() == 1


async def test_a_large_batch_is_one_write(storage: Storage, t0: int) -> None:
    batch = [parse_recipient(f"r{i}", {"addresses": {"email": f"r{i}@example.com"}})
             for i in range(2000)]
    await storage.recipient_put_many(batch, t0)
    assert await storage.recipient_count() == 2000
    got = await storage.recipient_get("r1999")
    assert got is not None and got.addresses == {"email": ("r1999@example.com",)}


async def test_recipient_pages_walk_every_id_once_in_order(storage: Storage,
                                                           t0: int) -> None:
    ids = [f"p{i:03d}" for i in range(25)]
    await storage.recipient_put_many([parse_recipient(i, {}) for i in reversed(ids)], t0)
    seen: list[str] = []
    after = None
    while page := await storage.recipient_page(after, 10):
        assert len(page) <= 10
        seen += [r.id for r in page]
        after = page[-1].id
    assert seen == ids
    assert await storage.recipient_page("p024", 10) == []
    first = await storage.recipient_page(None, 1)
    assert [r.id for r in first] == ["p000"] and first[0].updated_at == t0


async def test_delivery_links(storage: Storage, t0: int) -> None:
    from conveyor.ledger import NewDelivery
    from conveyor.storage.base import DeliveryPutParams

    await storage.delivery_put_many(DeliveryPutParams(
        [NewDelivery("d1", "email", "ann@example.com"), NewDelivery("d2", "fcm", "tok")],
        "queued", 60_000, t0))
    await storage.recipient_delivery_add_many([("ann", "d1")], 10_000, t0)
    await storage.recipient_delivery_add_many([("ann", "d2"), ("ann", "d1"), ("bob", "d9")],
                                              10_000, t0 + 5)
    listed = await storage.recipient_delivery_list("ann", 10, t0 + 6)
    assert [(d.delivery_id, d.channel, d.status) for d in listed] == [
        ("d2", "fcm", "queued"), ("d1", "email", "queued")]  # newest link first, d1 once
    assert [d.delivery_id for d in await storage.recipient_delivery_list("ann", 1, t0 + 6)
            ] == ["d2"]
    assert await storage.recipient_delivery_list("bob", 10, t0 + 6) == []  # no row: nothing
    assert await storage.recipient_delivery_expire(t0 + 10_000, 100) == 1  # ann-d1
    assert await storage.recipient_delivery_expire(t0 + 10_005, 100) == 2
    assert await storage.recipient_delivery_list("ann", 10, t0 + 6) == []
