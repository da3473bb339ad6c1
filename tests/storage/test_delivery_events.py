"""Conformance: the delivery view's events and counts, written by the ledger's triggers
(migration 0020) as the ledger's own statements change rows, read back the same on both."""

from __future__ import annotations

from conveyor.ledger import DeliveryUpdate, NewDelivery
from conveyor.storage.base import DeliveryPutParams, DeliverySeriesParams, Storage
from conveyor.timeline import DeliveryEvent, SeriesCount

A = NewDelivery("e1", "email", "a@example.com")
B = NewDelivery("e2", "push", "endpoint-b")
C = NewDelivery("e3", "email", "c@example.com")


async def test_events_of_a_retry_then_a_send(storage: Storage, t0: int) -> None:
    await storage.delivery_put_many(DeliveryPutParams([A, B], "queued", 600_000, t0))
    assert await storage.delivery_event_list("e1") == []  # made, never changed: the row
    await storage.delivery_begin_many([A, B], 600_000, t0 + 10)
    await storage.delivery_finish_many([DeliveryUpdate("e1", "retrying", "451 4.3.0 later"),
                                        DeliveryUpdate("e2", "sent", None, "loc-1")], t0 + 20)
    await storage.delivery_begin_many([A], 600_000, t0 + 30)
    await storage.delivery_finish_many([DeliveryUpdate("e1", "sent", None, "Q1")], t0 + 40)
    assert await storage.delivery_event_list("e1") == [
        DeliveryEvent(0, "queued", t0),
        DeliveryEvent(1, "retrying", t0 + 20, t0 + 10, "451 4.3.0 later"),
        DeliveryEvent(2, "sent", t0 + 40, t0 + 30, None, "Q1")]
    assert await storage.delivery_event_list("e2") == [
        DeliveryEvent(0, "queued", t0), DeliveryEvent(1, "sent", t0 + 20, t0 + 10, None,
                                                      "loc-1")]
    assert await storage.delivery_event_list("nope") == []


async def test_events_of_a_crash_a_skip_and_a_failure(storage: Storage, t0: int) -> None:
    # begun without a queued row, left `sending` by a crash, begun again, failed for good
    await storage.delivery_begin_many([A], 600_000, t0)
    await storage.delivery_begin_many([A], 600_000, t0 + 5)
    await storage.delivery_finish_many([DeliveryUpdate("e1", "failed", "550 5.1.1 " +
                                                       "x" * 900)], t0 + 6)
    events = await storage.delivery_event_list("e1")
    assert [(e.attempt, e.status, e.at, e.started_at) for e in events] == [
        (1, "sending", t0, None), (2, "failed", t0 + 6, t0 + 5)]
    assert events[1].detail == ("550 5.1.1 " + "x" * 900)[:500]  # answers are cut
    # a skip recorded, then its reason: one event, the later one
    await storage.delivery_put_many(DeliveryPutParams([B], "skipped", 600_000, t0))
    await storage.delivery_finish_many([DeliveryUpdate("e2", "skipped", "opted out")],
                                       t0 + 1)
    assert await storage.delivery_event_list("e2") == [
        DeliveryEvent(0, "skipped", t0 + 1, None, "opted out")]


async def test_counts_over_time_and_expiry(storage: Storage, t0: int) -> None:
    base = t0 // 10_000 * 10_000
    await storage.delivery_put_many(DeliveryPutParams([A, C], "queued", 600_000, base + 1))
    await storage.delivery_put_many(DeliveryPutParams([B], "held", 600_000, base + 2))
    await storage.delivery_begin_many([A, B, C], 600_000, base + 12_000)
    await storage.delivery_finish_many([DeliveryUpdate("e1", "sent", None, "p"),
                                        DeliveryUpdate("e2", "sent", None, "q"),
                                        DeliveryUpdate("e3", "failed", "550")], base + 13_000)
    window = DeliverySeriesParams(base, base + 20_000)
    assert await storage.delivery_series(window) == [
        SeriesCount(base, "email", "queued", 2), SeriesCount(base, "push", "held", 1),
        SeriesCount(base + 10_000, "email", "failed", 1),
        SeriesCount(base + 10_000, "email", "sent", 1),
        SeriesCount(base + 10_000, "push", "sent", 1)]
    assert await storage.delivery_series(
        DeliverySeriesParams(base + 10_000, base + 20_000, "push")) == [
        SeriesCount(base + 10_000, "push", "sent", 1)]
    # events go with their ledger rows; counts by the age of their bucket
    assert await storage.delivery_expire(base + 600_002, 100) == 3
    assert await storage.delivery_event_list("e1") == []
    assert await storage.delivery_series_expire(base + 10_000, 100) == 2
    assert [r.bucket for r in await storage.delivery_series(window)] == [base + 10_000] * 3


async def _reads_the_old_events_the_same(storage: Storage) -> None:
    """After 0025: e1 sent and e2 retried under 0020's triggers, e3 never changed."""
    sent = [DeliveryEvent(0, "queued", 100), DeliveryEvent(1, "sent", 120, 110, None, "Q1")]
    retried = [DeliveryEvent(0, "queued", 100),
               DeliveryEvent(1, "retrying", 120, 110, "451 later")]
    assert await storage.delivery_event_list("e1") == sent
    assert await storage.delivery_event_list("e2") == retried
    # never changed: the row alone tells it (its timeline reads the same from either)
    assert await storage.delivery_event_list("e3") in ([], [DeliveryEvent(0, "queued", 100)])
    await storage.delivery_begin_many([NewDelivery("e2", "email", "a")], 600_000, 130)
    await storage.delivery_finish_many([DeliveryUpdate("e2", "sent", None, "Q2")], 140)
    assert await storage.delivery_event_list("e2") == [
        *retried, DeliveryEvent(2, "sent", 140, 130, None, "Q2")]
    assert await storage.delivery_event_list("e1") == sent


async def test_an_upgraded_sqlite_file_reads_its_old_events_the_same(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Rows written under 0020's triggers (an event per change) read as before after 0025,
    # and go on from there under its rules.
    import sqlite3

    from conveyor.storage.sqlite.sqlite_base import MIGRATIONS, _statements
    from conveyor.storage.sqlite.sqlite_storage import SqliteStorage

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE conveyor_migrations (version INTEGER PRIMARY KEY, "
               "applied_at INTEGER NOT NULL)")
    for version, script in MIGRATIONS[:24]:
        for statement in _statements(script):
            db.execute(statement)
        db.execute("INSERT INTO conveyor_migrations VALUES (?, 0)", (version,))
    for i in ("e1", "e2", "e3"):  # 0024's put, begin and finish
        db.execute("INSERT INTO conveyor_deliveries (id, channel, recipient, status, "
                   "attempts, updated_at, expires_at) VALUES (?, 'email', 'a', 'queued', 0, "
                   "100, 9999999999999)", (i,))
    for i in ("e1", "e2"):
        db.execute("UPDATE conveyor_deliveries SET status = 'sending', attempts = 1, "
                   "updated_at = 110 WHERE id = ?", (i,))
    db.execute("UPDATE conveyor_deliveries SET status = 'sent', provider_id = 'Q1', "
               "updated_at = 120 WHERE id = 'e1'")
    db.execute("UPDATE conveyor_deliveries SET status = 'retrying', error = '451 later', "
               "updated_at = 120 WHERE id = 'e2'")
    db.close()
    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        await _reads_the_old_events_the_same(storage)
    finally:
        await storage.close()

async def test_an_upgraded_postgres_database_reads_its_old_events_the_same(
        postgres_url: str) -> None:
    # The same upgrade on PostgreSQL: rows written under 0020's triggers, read after 0025.
    import asyncpg

    from conveyor.storage.postgres.postgres_base import MIGRATIONS
    from conveyor.storage.postgres.postgres_storage import PostgresStorage

    conn = await asyncpg.connect(postgres_url)
    try:  # the test databases are cloned from a migrated template: start from empty
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await conn.execute("CREATE TABLE conveyor_migrations (version integer PRIMARY KEY, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")
        for version, script in MIGRATIONS[:24]:
            await conn.execute(script)
            await conn.execute("INSERT INTO conveyor_migrations (version) VALUES ($1)",
                               version)
        for i in ("e1", "e2", "e3"):  # 0024's put, begin and finish
            await conn.execute(
                "INSERT INTO conveyor_deliveries (id, channel, recipient, status, attempts, "
                "updated_at, expires_at) VALUES ($1, 'email', 'a', 'queued', 0, 100, "
                "9999999999999)", i)
        await conn.execute("UPDATE conveyor_deliveries SET status = 'sending', attempts = 1, "
                           "updated_at = 110 WHERE id IN ('e1', 'e2')")
        await conn.execute("UPDATE conveyor_deliveries SET status = 'sent', provider_id = "
                           "'Q1', updated_at = 120 WHERE id = 'e1'")
        await conn.execute("UPDATE conveyor_deliveries SET status = 'retrying', error = "
                           "'451 later', updated_at = 120 WHERE id = 'e2'")
    finally:
        await conn.close()
    storage = PostgresStorage(postgres_url)
    await storage.open()
    try:
        assert await storage.schema_version() == (len(MIGRATIONS), len(MIGRATIONS))
        await _reads_the_old_events_the_same(storage)
    finally:
        await storage.close()
