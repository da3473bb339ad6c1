"""Conformance: the notification path's combined writes (a ledger write with a send, with
deletes)."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.ledger import DeliveryUpdate, NewDelivery
from conveyor.storage.base import DeliveryPutParams, MessageSendParams, Storage
from tests.storage.conftest import batch, make_queue
from tests.storage.test_messages import lease, receive

A = NewDelivery("d1", "email", "a@example.com")
B = NewDelivery("d2", "email", "b@example.com")
C = NewDelivery("d3", "email", "c@example.com")


@pytest.mark.parametrize("durability", ["logged", "unlogged"])
async def test_put_send_writes_both_halves_only_when_every_row_is_new(
        storage: Storage, t0: int, durability: str) -> None:
    if durability == "unlogged" and storage.dialect != "postgresql":
        pytest.skip("unlogged queues are PostgreSQL's")
    queue = await make_queue(storage, "q", t0, durability=durability)
    made = batch(t0, ["envelope of d1 d2"])
    new, sent = await storage.delivery_put_send(
        DeliveryPutParams([A, B], "queued", 60_000, t0),
        MessageSendParams(queue.id, made, t0, notify=True))
    assert new == [True, True]
    assert [r.id for r in sent] == made.ids
    assert await storage.delivery_statuses(["d1", "d2"]) == ["queued", "queued"]
    # One known id: nothing is written, neither the new row nor the message.
    again = batch(t0, ["envelope of d2 d3"])
    new, sent = await storage.delivery_put_send(
        DeliveryPutParams([B, C], "queued", 60_000, t0),
        MessageSendParams(queue.id, again, t0))
    assert (new, sent) == ([False, True], [])
    assert await storage.delivery_statuses(["d3"]) == [None]
    got = await storage.message_receive(receive(queue, t0))
    assert [m.body.text for m in got] == ["envelope of d1 d2"]


async def test_put_send_held_rows_wait_with_their_delayed_message(storage: Storage,
                                                                   t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    new, _ = await storage.delivery_put_send(
        DeliveryPutParams([A], "held", 60_000, t0),
        MessageSendParams(queue.id, batch(t0, ["later"], delays_ms=[5_000]), t0))
    assert new == [True]
    assert await storage.delivery_statuses(["d1"]) == ["held"]
    assert await storage.message_receive(receive(queue, t0 + 4_999)) == []
    assert [m.body.text for m in await storage.message_receive(
        receive(queue, t0 + 5_000))] == ["later"]


async def test_concurrent_put_sends_of_one_id_enqueue_it_once(
        storage: Storage, second: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    rows = [NewDelivery(f"d{i}", "email", f"{i}@example.com") for i in range(200)]

    async def enqueue(by: Storage, body: str) -> bool:
        new, sent = await by.delivery_put_send(
            DeliveryPutParams(rows, "queued", 60_000, t0),
            MessageSendParams(queue.id, batch(t0, [body]), t0))
        assert all(new) == bool(sent)
        return bool(sent)

    for _ in range(5):
        won = await asyncio.gather(enqueue(storage, "first"), enqueue(second, "second"))
        assert sum(won) <= 1
    got = await storage.message_receive(receive(queue, t0))
    assert len(got) == 1


async def test_finish_delete_records_outcomes_and_acks(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    await storage.delivery_put_send(DeliveryPutParams([A, B], "queued", 60_000, t0),
                                    MessageSendParams(queue.id, batch(t0, ["e1", "e2"]), t0))
    await storage.delivery_begin_many([A, B], 60_000, t0 + 1)
    got = await storage.message_receive(receive(queue, t0 + 1))
    leases = [lease(m) for m in got]
    stale = leases[1]._replace(token=leases[1].token + 1)
    deleted = await storage.delivery_finish_delete(
        [DeliveryUpdate("d1", "sent", None, "p-1"), DeliveryUpdate("d2", "failed", "no")],
        t0 + 2, queue.id, [leases[0], stale])
    assert deleted == {leases[0]}
    assert await storage.delivery_statuses(["d1", "d2"]) == ["sent", "failed"]
    # nothing to record: only the acks
    assert await storage.delivery_finish_delete([], t0 + 3, queue.id, [leases[1]]) == {
        leases[1]}
    assert await storage.message_receive(receive(queue, t0 + 60_000)) == []


@pytest.mark.postgres
async def test_an_id_recorded_after_the_snapshot_fails_the_statement_and_it_runs_again(
        postgres_url: str, t0: int) -> None:
    """PostgreSQL: a concurrent enqueue records an id while this one waits on it (not in
    this statement's snapshot): the statement fails whole and runs again, then sees it."""
    import asyncpg

    from conveyor.storage.postgres.postgres_storage import PostgresStorage

    storage = PostgresStorage(postgres_url, maintenance=False)
    await storage.open()
    holder = await asyncpg.connect(postgres_url)
    try:
        queue = await make_queue(storage, "q", t0)
        tx = holder.transaction()
        await tx.start()
        await holder.execute(
            "INSERT INTO conveyor_deliveries (id, channel, recipient, status, attempts, "
            "updated_at, expires_at) VALUES ('d2', 'email', 'b@example.com', 'queued', 0, "
            "$1::bigint, $1::bigint + 60000)", t0)
        put = asyncio.create_task(storage.delivery_put_send(
            DeliveryPutParams([A, B], "queued", 60_000, t0),
            MessageSendParams(queue.id, batch(t0, ["envelope"]), t0)))
        # the statement waits on the holder's uncommitted d2 (its index entry)
        for _ in range(1000):
            if await holder.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the enqueue never waited on the holder's row")
        await tx.commit()
        assert await put == ([True, False], [])
        assert await storage.delivery_statuses(["d1", "d2"]) == [None, "queued"]
        assert await storage.message_receive(receive(queue, t0)) == []
    finally:
        await holder.close()
        await storage.close()


async def test_finish_begin_records_one_chunk_and_begins_the_next(storage: Storage,
                                                                  t0: int) -> None:
    await storage.delivery_put_many(DeliveryPutParams([A, B, C], "queued", 60_000, t0))
    await storage.delivery_begin_many([A], 60_000, t0 + 1)
    await storage.delivery_finish_many([DeliveryUpdate("d3", "sent", None, "p-3")], t0 + 1)
    before = await storage.delivery_finish_begin(
        [DeliveryUpdate("d1", "retrying", "451", None)], [B, C], 60_000, t0 + 2)
    assert before == ["queued", "sent"]  # the final one is left alone
    assert await storage.delivery_statuses(["d1", "d2", "d3"]) == [
        "retrying", "sending", "sent"]
    d1 = await storage.delivery_get("d1", t0 + 2)
    assert d1 is not None and (d1.error, d1.attempts) == ("451", 1)


async def _event_rows(storage: Storage) -> int:
    sql = "SELECT count(*) FROM conveyor_delivery_events"
    if storage.dialect == "postgresql":
        async with storage._pool.acquire() as conn:  # type: ignore[attr-defined]
            return int(await conn.fetchval(sql))
    return int(await storage._run(  # type: ignore[attr-defined]
        lambda db: db.execute(sql).fetchone()[0]))


async def test_put_send_keeps_the_made_state_in_the_row_not_in_an_event(
        storage: Storage, t0: int) -> None:
    """As delivery_put_many: a notification enqueued, begun and sent once writes no event
    row (migration 0025), and its view still starts with the made state."""
    queue = await make_queue(storage, "q", t0)
    await storage.delivery_put_send(DeliveryPutParams([A, B], "queued", 60_000, t0),
                                    MessageSendParams(queue.id, batch(t0, ["e"]), t0))
    await storage.delivery_begin_many([A, B], 60_000, t0 + 10)
    await storage.delivery_finish_many([DeliveryUpdate("d1", "sent", None, "p1"),
                                        DeliveryUpdate("d2", "sent", None, "p2")], t0 + 20)
    assert await _event_rows(storage) == 0
    events = await storage.delivery_event_list("d1")
    assert [(e.attempt, e.status, e.at) for e in events] == [(0, "queued", t0),
                                                             (1, "sent", t0 + 20)]
