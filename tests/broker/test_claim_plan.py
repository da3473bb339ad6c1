"""The PostgreSQL claim walks the claim index, even on a table that was never analysed.

Peers measured drain rates swinging 2-4x because the planner chose a sequential scan and a
sort on fresh, un-analysed tables. This runs the storage's own `message_claim` query (from
queries.sql) on 50,000 rows with autovacuum off, and reads the plans PostgreSQL actually used
through auto_explain, nested statements included (the claim may live in a function).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conveyor.broker.broker import Broker
from conveyor.storage.factory import storage_from_url
from conveyor.storage.sql import load_queries
from tests.support.messages import entry
from tests.support.postgres import in_ci

pytestmark = pytest.mark.postgres

ROWS = 50_000


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _scans_messages(node: dict[str, Any]) -> bool:
    return str(node.get("Relation Name", "")).startswith("conveyor_messages")


def _values_for(names: list[str], queue_id: int, now: int) -> list[Any]:
    """Parameter values by parameter name (the claim function's argument names)."""
    values: list[Any] = []
    for name in names:
        key = name.lower().removeprefix("p_")
        if "dead" in key or "dlq" in key:
            values.append(None)
        elif "queue" in key:
            values.append(queue_id)
        elif "limit" in key or "max_messages" in key:
            values.append(10)
        elif "visib" in key:
            values.append(30_000)
        elif "max_receive" in key:
            values.append(2_147_483_647)
        elif "now" in key:
            values.append(now)
        else:
            raise AssertionError(f"the claim takes a parameter this test cannot fill: {name}")
    return values


def _claim_call(db: psycopg.Connection[Any], query: str, queue_id: int,
                now: int) -> tuple[str, list[Any]]:
    """The claim query with psycopg placeholders, and its parameter values."""
    function = re.search(r"\bFROM\s+(\w+)\s*\(", query, re.IGNORECASE)
    positional = sorted({int(n) for n in re.findall(r"\$(\d+)", query)})
    if function and positional:
        row = db.execute("SELECT proargnames FROM pg_proc WHERE proname = %s",
                         (function.group(1),)).fetchone()
        assert row is not None and row[0], f"no argument names for {function.group(1)}"
        names = list(row[0])[:len(positional)]
        return re.sub(r"\$(\d+)", r"%s", query), _values_for(names, queue_id, now)
    named = re.findall(r"(?<!:):(\w+)", query)
    if named:
        return (re.sub(r"(?<!:):(\w+)", r"%(\1)s", query),
                dict(zip(named, _values_for(named, queue_id, now))))  # type: ignore[return-value]
    raise AssertionError("message_claim uses positional parameters outside a function call; "
                         "this test cannot tell which is which")


async def test_claim_uses_the_claim_index_on_a_fresh_table(postgres_url: str) -> None:
    broker = Broker(storage_from_url(postgres_url), sweep_interval=None)
    await broker.start()
    try:
        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute("ALTER TABLE conveyor_messages SET (autovacuum_enabled = false, "
                       "toast.autovacuum_enabled = false)")
            queue, _ = await broker.create_queue("plan")
            await broker.create_queue("other")
            for start in range(0, ROWS, 1000):
                await broker.send("plan", [entry({"n": i, "pad": "x" * 100})
                                           for i in range(start, start + 1000)])
            await broker.send("other", [entry(i) for i in range(1000)])
            stats = db.execute(
                "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
                "WHERE relname = 'conveyor_messages'").fetchone()
            assert stats == (None, None), "the table was analysed: the test proves nothing"

            indexes = [r[0] for r in db.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'conveyor_messages' "
                "AND indexname LIKE '%claim%'")]
            query = load_queries("conveyor.storage.postgres")["message_claim"]
            now = int(db.execute(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint").fetchone()[0])
            text, values = _claim_call(db, query, queue.id, now)

            plans: list[dict[str, Any]] = []

            def collect(diag: psycopg.errors.Diagnostic) -> None:
                message = diag.message_primary or ""
                if "plan:" in message:
                    plans.append(json.loads(message.split("plan:", 1)[1])["Plan"])

            try:
                db.execute("LOAD 'auto_explain'")
            except psycopg.Error as exc:
                if in_ci():
                    raise
                pytest.skip(f"auto_explain cannot be loaded here: {exc}")
            for setting, value in [("log_min_duration", "0"), ("log_nested_statements", "on"),
                                   ("log_format", "json"), ("log_level", "notice")]:
                db.execute(f"SET auto_explain.{setting} = {value}")
            db.add_notice_handler(collect)
            with db.transaction(force_rollback=True):
                claimed = db.execute(text, values).fetchall()  # type: ignore[arg-type]
            db.execute("SET auto_explain.log_min_duration = -1")
    finally:
        await broker.close()

    assert len(claimed) == 10, "the claim did not run as the storage runs it"
    assert plans, "auto_explain reported no plan"
    nodes = [node for plan in plans for node in _nodes(plan)]
    shown = json.dumps(plans, indent=1)[:6000]
    seq = [n for n in nodes if n["Node Type"] == "Seq Scan" and _scans_messages(n)]
    assert not seq, f"sequential scan of the messages table:\n{shown}"
    sorts = [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")
             and any(_scans_messages(d) for d in _nodes(n))]
    assert not sorts, f"the claim sorts messages instead of walking the index:\n{shown}"
    index_scans = {n.get("Index Name") for n in nodes
                   if n["Node Type"] in ("Index Scan", "Index Only Scan") and _scans_messages(n)}
    if indexes:
        assert index_scans & set(indexes), f"the claim index {indexes} is not used:\n{shown}"
    else:
        assert index_scans, f"no index scan of the messages table:\n{shown}"
