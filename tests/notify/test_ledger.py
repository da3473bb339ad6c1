"""The delivery ledger and suppression list, on both backends."""

from __future__ import annotations

import pytest

from conveyor.broker.broker import Broker
from conveyor.errors import InvalidInput
from conveyor.ledger import DeliveryUpdate, NewDelivery


async def test_begin_skips_finished_rows_and_counts(broker: Broker) -> None:
    ledger = broker.ledger
    rows = [NewDelivery(f"d{i}", "email", f"u{i}@example.com") for i in range(5)]
    await ledger.record(rows[:3])
    assert (await ledger.get("d0")).status == "queued"  # type: ignore[union-attr]
    assert await ledger.begin(rows) == ["queued", "queued", "queued", None, None]
    await ledger.finish([DeliveryUpdate("d0", "sent", provider_id="q-1"),
                         DeliveryUpdate("d1", "retrying", "451 try later"),
                         DeliveryUpdate("d2", "failed", "550 5.1.1 no such user")])
    # a redelivery: d0 and d2 are final and stay as they were, d1 is attempted again
    assert await ledger.begin(rows[:3]) == ["sent", "retrying", "failed"]
    d0, d1 = await ledger.get("d0"), await ledger.get("d1")
    assert d0 is not None and d0.status == "sent" and d0.provider_id == "q-1"
    assert d0.attempts == 1
    assert d1 is not None and d1.status == "sending" and d1.attempts == 2
    counts = await ledger.counts()
    assert counts["email"]["sent"] == 1 and counts["email"]["sending"] == 3
    assert counts["email"]["failed"] == 1 and set(counts) == {"email"}
    assert await ledger.counts("push") == {}


async def test_statuses_read_only_and_resends_counted(broker: Broker) -> None:
    ledger = broker.ledger
    rows = [NewDelivery(f"r{i}", "push", f"https://push.example/{i}") for i in range(3)]
    await ledger.record(rows[:2])
    assert await ledger.statuses(["r0", "r2", "r1"]) == ["queued", None, "queued"]
    assert (await ledger.get("r0")).attempts == 0  # type: ignore[union-attr]
    await ledger.begin(rows[:2])  # r0, r1 handed to the provider; the worker dies
    await ledger.finish([DeliveryUpdate("r1", "sent")])
    assert await ledger.statuses(["r0", "r1"]) == ["sending", "sent"]
    # a new worker: r0 is in doubt and resent (counted), r2 is new
    assert await ledger.begin([rows[0], rows[2]]) == ["sending", None]
    r0, r2 = await ledger.get("r0"), await ledger.get("r2")
    assert r0 is not None and r0.resends == 1 and r0.attempts == 2
    assert r2 is not None and r2.resends == 0
    await ledger.finish([DeliveryUpdate("r0", "retrying", "503")])
    await ledger.begin([rows[0]])  # a retry after a recorded outcome is no resend
    assert (await ledger.get("r0")).resends == 1  # type: ignore[union-attr]
    assert await ledger.resent() == {"push": 1} and await ledger.resent("email") == {}


async def test_repeated_id_in_one_batch(broker: Broker) -> None:
    row = NewDelivery("same", "push", "https://push.example/1")
    assert await broker.ledger.begin([row, row]) == [None, "sending"]
    # outcomes: the last one given for an id counts, on both storages (each writes a
    # batch in one statement, which would apply an arbitrary one of the repeats)
    other = NewDelivery("other", "push", "https://push.example/2")
    await broker.ledger.begin([other])
    await broker.ledger.finish([DeliveryUpdate("same", "retrying", "503"),
                                DeliveryUpdate("other", "sent", provider_id="p2"),
                                DeliveryUpdate("same", "sent", provider_id="p1")])
    same, two = await broker.ledger.get("same"), await broker.ledger.get("other")
    assert same is not None and (same.status, same.provider_id, same.error) == (
        "sent", "p1", None)
    assert two is not None and (two.status, two.provider_id) == ("sent", "p2")


async def test_rows_expire(broker: Broker, clock: object) -> None:
    await broker.ledger.record([NewDelivery("x", "email", "a@b.c")], keep_seconds=60)
    assert await broker.ledger.expire(broker.wall_now() + 61_000) == 1
    assert await broker.ledger.get("x") is None


async def test_suppression_list(broker: Broker) -> None:
    ledger = broker.ledger
    await ledger.suppress([("email", "gone@example.com", "550 5.1.1"),
                           ("push", "https://p/1", "410 Gone")])
    await ledger.suppress([("email", "gone@example.com", "unsubscribed")])
    assert await ledger.suppressed("email", ["a@example.com", "gone@example.com"]) == {
        "gone@example.com"}
    listed = await ledger.suppressions()
    assert [(s.channel, s.address, s.reason) for s in listed] == [
        ("email", "gone@example.com", "550 5.1.1"), ("push", "https://p/1", "410 Gone")]
    page = await ledger.suppressions(after="email\x1fgone@example.com")
    assert [s.address for s in page] == ["https://p/1"]
    assert await ledger.unsuppress("email", "gone@example.com")
    assert not await ledger.unsuppress("email", "gone@example.com")


async def test_input_checks(broker: Broker) -> None:
    with pytest.raises(InvalidInput):
        await broker.ledger.record([NewDelivery("", "email", "a")])
    with pytest.raises(InvalidInput):
        await broker.ledger.finish([DeliveryUpdate("a", "done")])
    with pytest.raises(InvalidInput):
        await broker.ledger.record([NewDelivery("a", "email", "a")], keep_seconds=0)


async def test_sqlite_ledger_rows_survive_the_move_to_insertion_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A file made before migration 5 (the ledger keyed by id) keeps its rows after it.
    import sqlite3

    from conveyor.storage.sqlite.sqlite_base import MIGRATIONS, _statements
    from conveyor.storage.sqlite.sqlite_storage import SqliteStorage

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE conveyor_migrations (version INTEGER PRIMARY KEY, "
               "applied_at INTEGER NOT NULL)")
    for version, script in MIGRATIONS[:4]:
        for statement in _statements(script):
            db.execute(statement)
        db.execute("INSERT INTO conveyor_migrations VALUES (?, 0)", (version,))
    db.execute("INSERT INTO conveyor_deliveries VALUES ('old-1', 'email', 'a@example.com', "
               "'sent', 1, NULL, 'q-9', 5, 9999999999999)")
    db.close()
    broker = Broker(SqliteStorage(path), sweep_interval=None)
    await broker.start()
    try:
        row = await broker.ledger.get("old-1")
        assert row is not None and row.status == "sent" and row.provider_id == "q-9"
        assert await broker.ledger.begin([NewDelivery("old-1", "email", "a@example.com"),
                                          NewDelivery("new-1", "email", "b@example.com")]
                                         ) == ["sent", None]
        assert (await broker.ledger.counts())["email"]["sending"] == 1
    finally:
        await broker.close()


async def test_a_nul_character_is_refused_in_ids_and_dropped_from_answers(
        broker: Broker) -> None:
    # No storage keeps a NUL (PostgreSQL refuses it in text; SQLite's JSON cuts at it):
    # an id with one is bad input on both, and a provider's answer loses it.
    with pytest.raises(InvalidInput) as caught:
        await broker.ledger.record([NewDelivery("a\x00b", "email", "a@b.c")])
    assert caught.value.field == "delivery_id"
    with pytest.raises(InvalidInput):
        await broker.ledger.begin([NewDelivery("ok", "email", "a\x00@b.c")])
    assert await broker.ledger.counts() == {}  # nothing written
    await broker.ledger.begin([NewDelivery("ok", "email", "a@b.c")])
    await broker.ledger.finish([DeliveryUpdate("ok", "retrying", "451\x00 later", "p\x00")])
    row = await broker.ledger.get("ok")
    assert row is not None and (row.error, row.provider_id) == ("451 later", "p")
