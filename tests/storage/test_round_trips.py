"""A receive and an acknowledgement on PostgreSQL are one statement (one round trip) each.

They used to be BEGIN + SET LOCAL (planner pins) + the statement + COMMIT: three round trips
each, six per batch where a hand-written drain needs two. Migration 0022 made them functions
carrying their pins in SET clauses, and their asynchronous commit in `set_config(..., true)`.
These tests count the statements the driver is asked to run, and check what the functions
leave behind: the asynchronous commit for the caller's transaction, and no planner pin.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from conveyor.broker.broker import Broker
from conveyor.storage.base import NO_RECEIVE_LIMIT, Lease, ReceiveParams
from conveyor.storage.postgres.postgres_storage import PostgresStorage
from tests.support.messages import entry

pytestmark = pytest.mark.postgres

METHODS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement an asyncpg connection is asked to run from this test's thread, in
    order (but LISTEN). Other threads are left out: a session's SQS server (tests/sqs) runs
    its own storage's upkeep in a thread of this process, every second."""
    seen: list[str] = []
    here = threading.get_ident()
    for name in METHODS:
        original = getattr(asyncpg.Connection, name)

        def counted(self: Any, query: str, *args: Any, _original: Any = original,
                    **kwargs: Any) -> Any:
            # Not the broker's LISTEN: its own connection, connecting in the background.
            if not query.startswith("LISTEN") and threading.get_ident() == here:
                seen.append(query)
            return _original(self, query, *args, **kwargs)

        monkeypatch.setattr(asyncpg.Connection, name, counted)
    yield seen


async def test_a_receive_and_an_acknowledgement_are_one_statement_each(
        postgres_url: str, statements: list[str]) -> None:
    storage = PostgresStorage(postgres_url, maintenance=False)
    async with Broker(storage, sweep_interval=None) as broker:
        queue, _ = await broker.create_queue("q")
        await broker.send("q", [entry(i) for i in range(30)])
        params = ReceiveParams(queue.id, "q", 10, 30_000, NO_RECEIVE_LIMIT, None, None, False)
        await storage.message_receive(params)  # the first call may look up the queue's table
        statements.clear()
        got = await storage.message_receive(params)
        assert len(got) == 10
        assert len(statements) == 1, statements
        statements.clear()
        leases = [Lease(m.id, int(m.receipt_handle[32:], 16)) for m in got]
        assert await storage.message_delete_many(queue.id, leases) == set(leases)
        assert len(statements) == 1, statements
        # Skipping groups is the same one statement.
        statements.clear()
        skipped = await storage.message_receive(
            ReceiveParams(queue.id, "q", 10, 30_000, NO_RECEIVE_LIMIT, None, None, False,
                          skip_groups=("g",)))
        assert len(skipped) == 10
        assert len(statements) == 1, statements


async def test_the_claim_commits_asynchronously_the_ack_durably_and_no_pin_is_left(
        postgres_url: str) -> None:
    async with Broker(PostgresStorage(postgres_url, maintenance=False),
                      sweep_interval=None) as broker:
        queue, _ = await broker.create_queue("q")
        await broker.send("q", [entry(i) for i in range(3)])
    with psycopg.connect(postgres_url) as db:
        # Test databases default to off (tests/support/postgres.py): the server's default.
        db.execute("SET synchronous_commit = on")
        db.commit()
        before = db.execute("SHOW synchronous_commit").fetchone()
        assert before == ("on",)
        rows = db.execute("SELECT id, token FROM conveyor_messages_claim"
                          "(%s, 2, 30000, %s, NULL, NULL, '{}')",
                          (queue.id, NO_RECEIVE_LIMIT)).fetchall()
        assert len(rows) == 2
        # The pins were the function's alone; the asynchronous commit is the transaction's.
        assert db.execute("SHOW enable_sort").fetchone() == ("on",)
        assert db.execute("SHOW enable_seqscan").fetchone() == ("on",)
        assert db.execute("SHOW synchronous_commit").fetchone() == ("off",)
        db.commit()
        assert db.execute("SHOW synchronous_commit").fetchone() == ("on",)
        ids = [r[0] for r in rows]
        deleted = db.execute("SELECT * FROM conveyor_messages_delete(%s, %s, %s, %s)",
                             (queue.id, ids, [r[1] for r in rows],
                              sorted({r[1] & 0xFF for r in rows}))).fetchall()
        assert sorted(r[0] for r in deleted) == [1, 2]
        assert db.execute("SHOW enable_nestloop").fetchone() == ("on",)
        db.rollback()
        # An acknowledgement commits synchronously (0027): a delete answered `ok` survives
        # a server crash.
        db.execute("SELECT * FROM conveyor_messages_delete(%s, %s, %s, %s)",
                   (queue.id, ids, [r[1] for r in rows], sorted({r[1] & 0xFF for r in rows})))
        assert db.execute("SHOW synchronous_commit").fetchone() == ("on",)
        db.rollback()
        left = db.execute("SELECT count(*) FROM conveyor_messages WHERE queue_id = %s",
                          (queue.id,)).fetchone()
        assert left == (3,)  # the delete rolled back with its transaction


async def test_a_send_and_its_wake_up_are_one_statement(
        postgres_url: str, statements: list[str]) -> None:
    storage = PostgresStorage(postgres_url, maintenance=False)
    heard: list[str] = []
    arrived = asyncio.Event()
    listener = await asyncpg.connect(postgres_url)
    try:
        await listener.add_listener(
            "conveyor_wake", lambda *args: (heard.append(args[3]), arrived.set()))
        async with Broker(storage, sweep_interval=None, queue_cache_seconds=3600) as broker:
            queue, _ = await broker.create_queue("q")
            await broker.queue("q")  # cached from here on
            statements.clear()
            await broker.send("q", [entry(i) for i in range(5)])
            assert len(statements) == 1, statements
            await arrived.wait()  # another connection's LISTEN hears it
            assert heard == [str(queue.id)]
            assert len(await broker.receive("q", max_messages=10)) == 5
    finally:
        await listener.close()
