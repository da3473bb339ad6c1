"""The ledger's physical layout on PostgreSQL (migration 0028): a notification's `begin`
and `finish` update its row in place (HOT: on its own page, no index entry), its id is
compared by bytes, and message bodies are compressed with lz4 where the server has it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from conveyor.ledger import DeliveryUpdate, NewDelivery
from conveyor.storage.base import DeliveryPutParams
from conveyor.storage.postgres.postgres_storage import PostgresStorage

KEEP_MS = 3_600_000
T0 = 1_700_000_000_000


@pytest.fixture
async def storage(postgres_url: str) -> AsyncIterator[PostgresStorage]:
    store = PostgresStorage(postgres_url, maintenance=False)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _blocks(url: str) -> dict[str, int]:
    """Each ledger row's heap page."""
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT id, (ctid::text::point)[0]::int FROM conveyor_deliveries")
        return dict(rows.fetchall())


async def test_begin_and_finish_keep_each_row_on_its_page(
        storage: PostgresStorage, postgres_url: str) -> None:
    # As the million writes them: put in chunks of 1,000, begun and finished 100 at a time
    # (one lane's chunk); ids of 32 hex digits, provider ids of 36 characters (APNs').
    rows = [NewDelivery(f"{n * 2654435761 % 2**64:016x}{n:016x}", "email",
                        f"recipient{n}@example.com") for n in range(3_000)]
    chunks = [rows[start:start + 100] for start in range(0, len(rows), 100)]
    for start in range(0, len(rows), 1_000):
        await storage.delivery_put_many(
            DeliveryPutParams(rows[start:start + 1_000], "queued", KEEP_MS, T0))
    put = _blocks(postgres_url)
    for chunk in chunks:
        assert await storage.delivery_begin_many(chunk, KEEP_MS, T0 + 1) == ["queued"] * 100
    _assert_stayed(put, _blocks(postgres_url))
    # The rows as put are dead now. The server prunes them from a page when it next reads
    # it, unless a snapshot older than them is open anywhere in the cluster (another test's,
    # on a shared server); VACUUM, which looks at this database only, does it here.
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("VACUUM conveyor_deliveries")
    for chunk in chunks:
        await storage.delivery_finish_many(
            [DeliveryUpdate(r.delivery_id, "sent", None, str(uuid.UUID(r.delivery_id)))
             for r in chunk], T0 + 2)
    _assert_stayed(put, _blocks(postgres_url))
    got = await storage.delivery_get(rows[-1].delivery_id, T0 + 2)
    assert got is not None and (got.status, got.attempts) == ("sent", 1)


def _assert_stayed(before: dict[str, int], after: dict[str, int]) -> None:
    assert after.keys() == before.keys()
    moved = [i for i in before if after[i] != before[i]]
    assert moved == [], f"{len(moved)} of {len(before)} rows left their page"


def test_ledger_ids_compare_by_bytes_and_bodies_use_lz4(
        storage: PostgresStorage, postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as db:
        collations: dict[str, str] = dict(db.execute(
            "SELECT table_name, collation_name FROM information_schema.columns "
            "WHERE (table_name, column_name) IN (('conveyor_deliveries', 'id'), "
            "('conveyor_delivery_events', 'delivery_id'))").fetchall())
        assert collations == {"conveyor_deliveries": "C", "conveyor_delivery_events": "C"}
        [[has_lz4]] = db.execute(
            "SELECT EXISTS (SELECT FROM pg_settings WHERE name = 'default_toast_compression' "
            "AND 'lz4' = ANY (enumvals))").fetchall()
        if not has_lz4:  # a server built without it (or before 14): pglz, as before
            return
        methods = db.execute(
            "SELECT DISTINCT a.attcompression FROM pg_attribute a JOIN pg_class c "
            "ON c.oid = a.attrelid WHERE c.relname LIKE 'conveyor\\_messages%' "
            "AND c.relkind IN ('r', 'p') AND a.attname IN ('body', 'attributes')").fetchall()
        assert methods == [("l",)]
