"""The ledger's combined writes through the broker (`record_send`, `begin(finished=)`,
`finish_ack`): the same checks as their single halves, on both backends."""

from __future__ import annotations

import pytest

from conveyor.broker.broker import Broker
from conveyor.errors import InvalidInput, TooManyEntries
from conveyor.ledger import DeliveryUpdate, NewDelivery
from conveyor.models import Body, SendEntry

ROWS = [NewDelivery(f"d{i}", "email", f"u{i}@example.com") for i in range(3)]


async def test_record_send_enqueues_only_when_every_row_is_new(broker: Broker) -> None:
    await broker.create_queue("q")
    new, sent = await broker.ledger.record_send(ROWS[:2], "q", [SendEntry(Body("d0 d1"))])
    assert new == [True, True] and len(sent) == 1
    new, sent = await broker.ledger.record_send(ROWS[1:], "q", [SendEntry(Body("d1 d2"))])
    assert (new, sent) == ([False, True], [])  # nothing written: d2 is still unknown
    assert await broker.ledger.statuses(["d0", "d1", "d2"]) == ["queued", "queued", None]
    new, sent = await broker.ledger.record_send(ROWS[2:], "q", [SendEntry(Body("d2"))],
                                                status="held")
    assert new == [True] and (await broker.ledger.statuses(["d2"])) == ["held"]
    got = await broker.receive("q", 10, 30, 0)
    assert sorted(m.body.text for m in got) == ["d0 d1", "d2"]


async def test_record_send_checks_both_halves(broker: Broker) -> None:
    await broker.create_queue("q")
    await broker.create_queue("q.fifo", {"fifo": True})
    entry = [SendEntry(Body("x"))]
    with pytest.raises(InvalidInput):
        await broker.ledger.record_send([ROWS[0], ROWS[0]], "q", entry)
    with pytest.raises(InvalidInput):
        await broker.ledger.record_send([NewDelivery("", "email", "a")], "q", entry)
    with pytest.raises(InvalidInput):
        await broker.ledger.record_send(ROWS[:1], "q", entry, status="nope")
    with pytest.raises(InvalidInput):  # the broker's own send checks
        await broker.ledger.record_send(ROWS[:1], "q", [SendEntry(Body("x"), delay_seconds=-1)])
    with pytest.raises(InvalidInput):
        await broker.ledger.record_send(ROWS[:1], "q.fifo", [SendEntry(Body("x"),
                                                                      group_id="g")])
    with pytest.raises(InvalidInput):
        await broker.ledger.record_send(ROWS[:1], "q",
                                        [SendEntry(Body("x"), deduplication_id="k")])
    with pytest.raises(TooManyEntries):
        await broker.ledger.record_send(ROWS[:1], "q", [SendEntry(Body("x"))] * 1001)
    assert await broker.ledger.statuses(["d0"]) == [None]  # nothing got through


async def test_begin_with_the_chunk_before_finished(broker: Broker) -> None:
    ledger = broker.ledger
    await ledger.record(ROWS)
    assert await ledger.begin(ROWS[:1]) == ["queued"]
    assert await ledger.begin(ROWS[1:] + ROWS[1:2], finished=[
        DeliveryUpdate("d0", "sent", provider_id="p-0")]) == ["queued", "queued", "sending"]
    assert await ledger.statuses(["d0", "d1", "d2"]) == ["sent", "sending", "sending"]
    with pytest.raises(InvalidInput):  # one id both finished and begun
        await ledger.begin(ROWS[:1], finished=[DeliveryUpdate("d0", "sent")])
    with pytest.raises(InvalidInput):
        await ledger.begin(ROWS[:1], finished=[DeliveryUpdate("d1", "done")])
    assert await ledger.begin([], finished=[DeliveryUpdate("d1", "sent")]) == []
    assert await ledger.statuses(["d1"]) == ["sent"]


async def test_finish_ack(broker: Broker) -> None:
    await broker.create_queue("q")
    await broker.ledger.record_send(ROWS[:2], "q", [SendEntry(Body("a")), SendEntry(Body("b"))])
    await broker.ledger.begin(ROWS[:2])
    got = await broker.receive("q", 10, 30, 0)
    results = await broker.ledger.finish_ack(
        [DeliveryUpdate("d0", "sent"), DeliveryUpdate("d1", "sent")], "q",
        [got[0].receipt_handle, "not-a-handle"])
    assert [r.status for r in results] == ["ok", "invalid"]
    assert await broker.ledger.statuses(["d0", "d1"]) == ["sent", "sent"]
    results = await broker.ledger.finish_ack([], "q", [got[0].receipt_handle,
                                                       got[1].receipt_handle])
    assert [r.status for r in results] == ["stale", "ok"]
    assert await broker.receive("q", 10, 0, 0) == []
