"""Conformance: the driver's lifecycle, its clock, and writing through an application's
connection (`bound`)."""

from __future__ import annotations

import time

import asyncpg
import pytest

from conveyor.errors import Unsupported
from conveyor.storage.base import (
    NO_RECEIVE_LIMIT,
    MessagePeekParams,
    MessageSendParams,
    ReceiveParams,
    Storage,
)
from tests.storage.conftest import batch, make_queue


async def test_schema_is_current_and_open_is_idempotent(storage: Storage,
                                                        database_url: str) -> None:
    applied, known = await storage.schema_version()
    assert applied == known > 0
    from conveyor.storage.factory import storage_from_url

    again = storage_from_url(database_url)  # a second node on a migrated database
    await again.open()
    try:
        assert await again.schema_version() == (applied, known)
    finally:
        await again.close()


async def test_the_database_clock_when_now_is_none(storage: Storage, t0: int) -> None:
    now = await storage.now()
    assert abs(now - time.time() * 1000) < 5_000
    queue = await make_queue(storage, "q", now)
    made = batch(now, ["a"])
    await storage.message_send_many(MessageSendParams(queue.id, made, None))
    [got] = await storage.message_receive(ReceiveParams(
        queue.id, "q", 10, 30_000, NO_RECEIVE_LIMIT, None, None))
    assert got.id == made.ids[0]
    assert now - 1_000 <= got.sent_at <= await storage.now()
    assert got.lease_until - got.first_received_at == 30_000


async def test_bound_writes_in_the_callers_transaction(storage: Storage, backend: str,
                                                       database_url: str, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    if backend == "sqlite":
        with pytest.raises(Unsupported):
            storage.bound(object())
        return
    conn = await asyncpg.connect(database_url)
    try:
        for commit in (False, True):
            tx = conn.transaction()
            await tx.start()
            made = batch(t0, ["commit" if commit else "rollback"])
            await storage.bound(conn).message_send_many(MessageSendParams(queue.id, made, t0))
            await (tx.commit() if commit else tx.rollback())
    finally:
        await conn.close()
    peeked = await storage.message_peek(MessagePeekParams(queue.id, 10, None, t0))
    assert [p.body.text for p in peeked] == ["commit"]
