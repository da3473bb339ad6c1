"""Transactional enqueue: `Broker.send(..., connection=...)` writes in the application's own
PostgreSQL transaction, through asyncpg and psycopg 3 (async and sync) connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import psycopg
import pytest

from conveyor.broker.broker import Broker
from conveyor.errors import InvalidInput, InvalidMessage, Unsupported
from conveyor.models import Body, SendEntry
from conveyor.storage.factory import storage_from_url
from tests.conftest import OpenBroker
from tests.support.waiting import until_waiting

DRIVERS = ["asyncpg", "psycopg-async", "psycopg-sync"]
on_postgres = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


class AppConnection:
    """The application's connection, one driver or another, with a transaction open."""

    def __init__(self, raw: Any, kind: str) -> None:
        self.raw = raw
        self.kind = kind

    async def execute(self, sql: str) -> None:
        """The application's own write, in its transaction."""
        if self.kind == "psycopg-sync":
            await asyncio.to_thread(self.raw.execute, sql)
        else:
            await self.raw.execute(sql)

    async def end(self, commit: bool) -> None:
        """COMMIT or ROLLBACK."""
        sql = "COMMIT" if commit else "ROLLBACK"
        if self.kind == "asyncpg":
            await self.raw.execute(sql)
        elif self.kind == "psycopg-async":
            await (self.raw.commit() if commit else self.raw.rollback())
        else:
            await asyncio.to_thread(self.raw.commit if commit else self.raw.rollback)


@contextlib.asynccontextmanager
async def app_transaction(kind: str, url: str) -> AsyncIterator[AppConnection]:
    """A connection of `kind` to `url` with a transaction begun (the caller ends it)."""
    if kind == "asyncpg":
        raw = await asyncpg.connect(url)
        await raw.execute("BEGIN")
        try:
            yield AppConnection(raw, kind)
        finally:
            await raw.close()
    elif kind == "psycopg-async":
        araw = await psycopg.AsyncConnection.connect(url)  # psycopg begins implicitly
        try:
            yield AppConnection(araw, kind)
        finally:
            await araw.close()
    else:
        sraw = await asyncio.to_thread(psycopg.connect, url)
        try:
            yield AppConnection(sraw, kind)
        finally:
            await asyncio.to_thread(sraw.close)


def entry(text: str, **kwargs: Any) -> SendEntry:
    return SendEntry(body=Body.of(text), **kwargs)


@pytest.fixture
async def pg(postgres_url: str, open_broker: OpenBroker) -> tuple[str, Broker, Broker]:
    """The database URL, a producer broker and a consumer broker (separate pools)."""
    producer = await open_broker()
    consumer = await open_broker()
    await producer.create_queue("q")
    async with app_transaction("asyncpg", postgres_url) as conn:
        await conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        await conn.end(commit=True)
    return postgres_url, producer, consumer


@on_postgres
@pytest.mark.parametrize("kind", DRIVERS)
async def test_messages_exist_only_once_the_transaction_commits(
        pg: tuple[str, Broker, Broker], kind: str) -> None:
    url, producer, consumer = pg
    async with app_transaction(kind, url) as conn:
        await conn.execute("INSERT INTO orders VALUES (1)")
        sent = await producer.send("q", [entry("order 1"), entry("order 1 again")],
                                   connection=conn.raw)
        assert await consumer.receive("q", 10, wait_seconds=0) == []
        assert (await consumer.queue_stats("q")).visible == 0
        await conn.end(commit=True)
    got = await consumer.receive("q", 10, wait_seconds=0)
    assert sorted(m.id for m in got) == sorted(r.id for r in sent)
    assert {m.body.text for m in got} == {"order 1", "order 1 again"}


@on_postgres
@pytest.mark.parametrize("kind", DRIVERS)
async def test_a_rolled_back_send_leaves_nothing_not_even_its_deduplication_id(
        pg: tuple[str, Broker, Broker], kind: str) -> None:
    url, producer, consumer = pg
    async with app_transaction(kind, url) as conn:
        await conn.execute("INSERT INTO orders VALUES (2)")
        await producer.send("q", [entry("order 2", deduplication_id="order-2")],
                            connection=conn.raw)
        await conn.end(commit=False)
    assert await consumer.receive("q", 10, wait_seconds=0) == []
    again = await producer.send("q", [entry("order 2", deduplication_id="order-2")])
    assert not again[0].duplicate
    assert [m.id for m in await consumer.receive("q", 10, wait_seconds=0)] == [again[0].id]


@on_postgres
async def test_a_refused_send_leaves_the_transaction_usable(
        pg: tuple[str, Broker, Broker]) -> None:
    url, producer, consumer = pg
    async with app_transaction("asyncpg", url) as conn:
        await conn.execute("INSERT INTO orders VALUES (3)")
        with pytest.raises(InvalidMessage):
            await producer.send("q", [entry("ok"), entry("bad \x00 byte")], connection=conn.raw)
        await producer.send("q", [entry("kept")], connection=conn.raw)
        await conn.end(commit=True)
    assert [m.body.text for m in await consumer.receive("q", 10, wait_seconds=0)] == ["kept"]
    check = await asyncpg.connect(url)
    try:
        assert await check.fetchval("SELECT count(*) FROM orders") == 1
    finally:
        await check.close()


@on_postgres
async def test_a_waiting_consumer_is_woken_by_the_commit(
        pg: tuple[str, Broker, Broker]) -> None:
    url, producer, consumer = pg
    waiting = asyncio.create_task(consumer.receive("q", 1, wait_seconds=10))
    await until_waiting(consumer, 1)
    async with app_transaction("asyncpg", url) as conn:
        await producer.send("q", [entry("wake up")], connection=conn.raw)
        await asyncio.sleep(0.3)
        assert not waiting.done()  # nothing committed yet
        await conn.end(commit=True)
    got = await asyncio.wait_for(waiting, 5)
    assert [m.body.text for m in got] == ["wake up"]


@on_postgres
async def test_fifo_and_deduplicated_batches_in_a_transaction(
        pg: tuple[str, Broker, Broker]) -> None:
    url, producer, consumer = pg
    await producer.create_queue("f.fifo", {"fifo": True})
    async with app_transaction("psycopg-async", url) as conn:
        results = await producer.send("f.fifo", [
            entry("a", group_id="g", deduplication_id="1"),
            entry("b", group_id="g", deduplication_id="2"),
            entry("a again", group_id="g", deduplication_id="1"),
        ], connection=conn.raw)
        await conn.end(commit=True)
    assert results[2].duplicate and results[2].id == results[0].id
    assert int(results[0].sequence_number or 0) < int(results[1].sequence_number or 0)
    got = await consumer.receive("f.fifo", 10, wait_seconds=0)
    assert [m.body.text for m in got] == ["a", "b"]


@on_postgres
async def test_anything_but_a_postgresql_connection_is_refused(
        pg: tuple[str, Broker, Broker]) -> None:
    _, producer, consumer = pg
    with pytest.raises(InvalidInput, match="asyncpg or psycopg"):
        await producer.send("q", [entry("x")], connection="postgresql://elsewhere")
    assert (await consumer.queue_stats("q")).visible == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_says_transactional_enqueue_needs_postgresql(broker: Broker) -> None:
    await broker.create_queue("q")
    with pytest.raises(Unsupported, match="PostgreSQL"):
        await broker.send("q", [entry("x")], connection=object())
    assert (await broker.queue_stats("q")).visible == 0


@on_postgres
async def test_sqlalchemy_connections_are_unwrapped(pg: tuple[str, Broker, Broker]) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.ext.asyncio import create_async_engine

    url, producer, consumer = pg
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO orders VALUES (10)"))
            raw = await conn.get_raw_connection()
            await producer.send("q", [entry("from sqlalchemy async")], connection=raw)
    finally:
        await engine.dispose()

    def sync_send() -> None:
        sync_engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with sync_engine.begin() as conn:
                conn.execute(text("INSERT INTO orders VALUES (11)"))
                asyncio.run(producer_in_thread(conn.connection))
        finally:
            sync_engine.dispose()

    async def producer_in_thread(raw: object) -> None:
        # A broker of this thread's own loop (asyncpg pools belong to one loop).
        async with Broker(storage_from_url(url)) as other:
            await other.send("q", [entry("from sqlalchemy sync")], connection=raw)

    await asyncio.to_thread(sync_send)
    got = await consumer.receive("q", 10, wait_seconds=0)
    assert sorted(m.body.text for m in got) == ["from sqlalchemy async",
                                                 "from sqlalchemy sync"]
