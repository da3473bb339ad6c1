"""The PostgreSQL claim walks the claim index, even on a table that was never analysed.

Peers measured drain rates swinging 2-4x because the planner chose a sequential scan and a
sort on fresh, un-analysed tables. This fills a messages table with 50,000 rows (autovacuum
off, so nothing analyses it), then receives through the Broker as production does, and reads
the plan PostgreSQL actually ran for the storage's `message_claim` block (queries.sql):
auto_explain is switched on, for the claim alone, on the very connection the storage uses, with
nested statements logged (the claim is a function carrying its planner pins, migration 0022:
the plan that matters is its inner statement's). Seven receives, so that a cached plan's
switch to a generic plan (after five executions) is covered too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from conveyor.broker.broker import Broker
from conveyor.storage.factory import storage_from_url
from conveyor.storage.sql import load_queries
from tests.support.messages import entry

pytestmark = pytest.mark.postgres

ROWS = 50_000
RECEIVES = 7


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _scans_messages(node: dict[str, Any]) -> bool:
    return str(node.get("Relation Name", "")).startswith("conveyor_messages")


async def test_claim_uses_the_claim_index_on_a_fresh_table(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    claim_sql = load_queries("conveyor.storage.postgres")["message_claim"]
    plans: list[dict[str, Any]] = []
    claims: list[int] = []

    def listen(_connection: object, message: Any) -> None:
        text = str(getattr(message, "message", ""))
        if "plan:" in text:
            plans.append(json.loads(text.split("plan:", 1)[1])["Plan"])

    original = asyncpg.Connection.fetch

    async def fetch(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
        if query != claim_sql:
            return await original(self, query, *args, **kwargs)
        claims.append(1)
        await self.execute("LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; "
                           "SET auto_explain.log_format = json; "
                           "SET auto_explain.log_nested_statements = on; "
                           "SET auto_explain.log_level = notice")
        self.add_log_listener(listen)
        try:
            return await original(self, query, *args, **kwargs)
        finally:
            for _ in range(3):
                await asyncio.sleep(0)  # listeners are called soon, not at once
            self.remove_log_listener(listen)
            await self.execute("SET auto_explain.log_min_duration = -1")

    broker = Broker(storage_from_url(postgres_url), sweep_interval=None)
    await broker.start()
    try:
        with psycopg.connect(postgres_url, autocommit=True) as db:
            for (slot,) in db.execute("SELECT inhrelid::regclass::text FROM pg_inherits "
                                      "WHERE inhparent = 'conveyor_messages'::regclass"):
                db.execute(f"ALTER TABLE {slot} SET (autovacuum_enabled = false, "
                           "toast.autovacuum_enabled = false)")
            await broker.create_queue("plan")
            await broker.create_queue("other")
            await broker.send("other", [entry(i) for i in range(1000)])
            for start in range(0, ROWS, 1000):
                await broker.send("plan", [entry({"n": i, "pad": "x" * 100})
                                           for i in range(start, start + 1000)])
            analysed = db.execute(
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname LIKE "
                "'conveyor\\_messages%' AND (last_analyze IS NOT NULL "
                "OR last_autoanalyze IS NOT NULL)").fetchone()
            assert analysed == (0,), "the table was analysed: the test proves nothing"
            # The claim index of the table and of each of its slots (partitions).
            indexes = [r[0] for r in db.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'conveyor_messages%' "
                "AND tablename <> 'conveyor_messages_unlogged' "
                "AND indexdef LIKE '%(queue_id, priority DESC, visible_at, id)%'")]
        monkeypatch.setattr(asyncpg.Connection, "fetch", fetch)
        for _ in range(RECEIVES):
            assert len(await broker.receive("plan", max_messages=10)) == 10
        monkeypatch.undo()
    finally:
        await broker.close()

    assert len(claims) == RECEIVES, "the storage never ran the message_claim block"
    # The function call's own plan and its set_config step touch no message table.
    plans = [p for p in plans if any(_scans_messages(n) for n in _nodes(p))]
    assert len(plans) >= RECEIVES, f"auto_explain reported {len(plans)} claim plans"
    for plan in plans:
        nodes = list(_nodes(plan))
        shown = json.dumps(plan, indent=1)[:6000]
        seq = [n for n in nodes if n["Node Type"] == "Seq Scan" and _scans_messages(n)]
        assert not seq, f"sequential scan of the messages table:\n{shown}"
        sorts = [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")
                 and any(_scans_messages(d) for d in _nodes(n))]
        assert not sorts, f"the claim sorts messages instead of walking the index:\n{shown}"
        used = {n.get("Index Name") for n in nodes
                if n["Node Type"] in ("Index Scan", "Index Only Scan") and _scans_messages(n)}
        if indexes:
            assert used & set(indexes), f"the claim index {indexes} is not used:\n{shown}"
        else:
            assert used, f"no index scan of the messages table:\n{shown}"
