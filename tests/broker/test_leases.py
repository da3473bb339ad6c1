"""Leases: invisibility, expiry, receipt handles, change visibility, retry."""

from __future__ import annotations

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import InvalidInput
from conveyor.models import VisibilityEntry
from tests.conftest import OpenBroker
from tests.support.messages import bodies, send


@pytest.fixture
async def q(broker: Broker) -> str:
    await broker.create_queue("q", {"visibility_timeout": 30})
    return "q"


async def test_leased_message_is_invisible_to_others(broker: Broker, q: str,
                                                     open_broker: OpenBroker) -> None:
    other = await open_broker()
    await send(broker, q, "only one")
    [_first] = await broker.receive(q)
    assert await other.receive(q) == []
    assert await broker.receive(q) == []


async def test_lease_expiry_redelivers_with_new_handle(broker: Broker, q: str,
                                                       clock: ManualClock,
                                                       open_broker: OpenBroker) -> None:
    other = await open_broker()
    [message_id] = await send(broker, q, "again")
    [first] = await broker.receive(q)
    assert first.receive_count == 1
    clock.advance(29.999)
    assert await other.receive(q) == []
    clock.advance(0.001)
    [second] = await other.receive(q)
    assert second.id == first.id == message_id
    assert second.receive_count == 2
    assert second.receipt_handle != first.receipt_handle
    assert second.first_received_at == first.first_received_at
    assert second.body == first.body


async def test_receive_visibility_timeout_overrides_queue(broker: Broker, q: str,
                                                          clock: ManualClock) -> None:
    await send(broker, q, "x")
    await broker.receive(q, visibility_timeout=5)
    clock.advance(5)
    [again] = await broker.receive(q, visibility_timeout=0)
    assert again.receive_count == 2
    # visibility 0: visible again at once
    [third] = await broker.receive(q)
    assert third.receive_count == 3


async def test_delete_with_current_handle(broker: Broker, q: str, clock: ManualClock) -> None:
    await send(broker, q, "a", "b")
    got = await broker.receive(q)
    results = await broker.delete(q, [m.receipt_handle for m in got])
    assert [r.status for r in results] == ["ok", "ok"]
    assert all(r.ok for r in results)
    clock.advance(3600)
    assert await broker.receive(q) == []
    assert (await broker.queue_stats(q)).total == 0


async def test_delete_twice_is_stale(broker: Broker, q: str) -> None:
    await send(broker, q, "a")
    [m] = await broker.receive(q)
    assert (await broker.delete(q, [m.receipt_handle]))[0].ok
    [again] = await broker.delete(q, [m.receipt_handle])
    assert again.status == "stale" and not again.ok and again.message


async def test_stale_handle_does_not_delete_newer_lease(broker: Broker, q: str,
                                                        clock: ManualClock) -> None:
    await send(broker, q, "x")
    [old] = await broker.receive(q)
    clock.advance(30)
    [new] = await broker.receive(q)
    [result] = await broker.delete(q, [old.receipt_handle])
    assert result.status == "stale"
    stats = await broker.queue_stats(q)
    assert stats.in_flight == 1
    assert (await broker.delete(q, [new.receipt_handle]))[0].ok
    assert (await broker.queue_stats(q)).total == 0


async def test_stale_handle_does_not_extend_newer_lease(broker: Broker, q: str,
                                                        clock: ManualClock) -> None:
    await send(broker, q, "x")
    [old] = await broker.receive(q)
    clock.advance(30)
    [_new] = await broker.receive(q)
    [result] = await broker.change_visibility(q, [VisibilityEntry(old.receipt_handle, 3600)])
    assert result.status == "stale"
    [released] = await broker.change_visibility(q, [VisibilityEntry(old.receipt_handle, 0)])
    assert released.status == "stale"
    assert await broker.receive(q) == []  # the stale release did not release it
    clock.advance(30)  # the newer lease still ends at its own time
    [third] = await broker.receive(q)
    assert third.receive_count == 3


async def test_handle_of_expired_lease_is_stale_after_redelivery_only(
        broker: Broker, q: str, clock: ManualClock) -> None:
    """An expired lease nobody took yet: SQS lets the old handle still delete it."""
    await send(broker, q, "x")
    [m] = await broker.receive(q)
    clock.advance(60)
    [result] = await broker.delete(q, [m.receipt_handle])
    assert result.ok
    assert (await broker.queue_stats(q)).total == 0


async def test_delete_batch_reports_each_entry(broker: Broker, q: str,
                                               clock: ManualClock) -> None:
    await send(broker, q, "a", "b")
    got = await broker.receive(q)
    results = await broker.delete(q, [got[0].receipt_handle, "garbage", got[0].receipt_handle,
                                      got[1].receipt_handle])
    statuses = [r.status for r in results]
    assert statuses[1] == "invalid"
    assert statuses[3] == "ok"
    assert sorted(statuses[::2]) == ["ok", "stale"] or statuses[::2] == ["ok", "ok"]
    assert results[1].receipt_handle == "garbage"
    assert (await broker.queue_stats(q)).total == 0


async def test_handles_are_bound_to_their_queue(broker: Broker, q: str) -> None:
    await broker.create_queue("other")
    await send(broker, q, "x")
    [m] = await broker.receive(q)
    [wrong] = await broker.delete("other", [m.receipt_handle])
    assert not wrong.ok
    assert (await broker.queue_stats(q)).in_flight == 1


async def test_malformed_handles(broker: Broker, q: str) -> None:
    for handle in ["", "x", "a" * 32, "not a handle at all", "=" * 48, "g" * 48]:
        [result] = await broker.delete(q, [handle])
        assert result.status == "invalid", handle
        [result] = await broker.change_visibility(q, [VisibilityEntry(handle, 10)])
        assert result.status == "invalid", handle


async def test_a_bad_handle_beside_good_ones_is_refused_alone(broker: Broker, q: str) -> None:
    # int(x, 16) would take these; as ids they broke the whole batch on PostgreSQL.
    await send(broker, q, "x")
    [m] = await broker.receive(q)
    h = m.receipt_handle
    results = await broker.delete(q, ["0x" + h[2:], h[:32] + "0X" + h[34:], h])
    assert [r.status for r in results] == ["invalid", "invalid", "ok"]


async def test_an_upper_case_handle_means_the_same_lease_on_both_backends(
        broker: Broker, q: str) -> None:
    await send(broker, q, "x")
    [m] = await broker.receive(q)
    [result] = await broker.delete(q, [m.receipt_handle.upper()])
    assert result.status == "ok"


async def test_well_formed_unknown_handle_is_stale(broker: Broker, q: str) -> None:
    await send(broker, q, "x")
    [m] = await broker.receive(q)
    forged = m.receipt_handle[:-1] + ("0" if m.receipt_handle[-1] != "0" else "1")
    [result] = await broker.delete(q, [forged])
    assert result.status == "stale"
    [result] = await broker.change_visibility(q, [VisibilityEntry(forged, 0)])
    assert result.status == "stale"
    assert (await broker.queue_stats(q)).in_flight == 1


async def test_delete_batch_bounds(broker: Broker, q: str) -> None:
    with pytest.raises(InvalidInput):
        await broker.delete(q, [])
    with pytest.raises(InvalidInput):
        await broker.delete(q, ["x"] * 1001)
    with pytest.raises(InvalidInput):
        await broker.change_visibility(q, [])


async def test_change_visibility_extends(broker: Broker, q: str, clock: ManualClock) -> None:
    await send(broker, q, "x")
    [m] = await broker.receive(q)
    clock.advance(20)
    [result] = await broker.change_visibility(q, [VisibilityEntry(m.receipt_handle, 60)])
    assert result.ok
    clock.advance(59.999)  # counted from the change, not from the receive
    assert await broker.receive(q) == []
    clock.advance(0.001)
    [again] = await broker.receive(q)
    assert again.receive_count == 2


async def test_change_visibility_can_shorten(broker: Broker, q: str,
                                             clock: ManualClock) -> None:
    await send(broker, q, "x")
    [m] = await broker.receive(q)
    assert (await broker.change_visibility(q, [VisibilityEntry(m.receipt_handle, 5)]))[0].ok
    clock.advance(5)
    assert len(await broker.receive(q)) == 1


async def test_change_visibility_zero_releases_now(broker: Broker, q: str) -> None:
    await send(broker, q, "x")
    [m] = await broker.receive(q)
    [result] = await broker.change_visibility(q, [VisibilityEntry(m.receipt_handle, 0)])
    assert result.ok
    [again] = await broker.receive(q)
    assert again.receive_count == 2 and again.receipt_handle != m.receipt_handle
    # the released handle is spent
    assert (await broker.delete(q, [m.receipt_handle]))[0].status == "stale"


async def test_released_handle_cannot_extend(broker: Broker, q: str,
                                             clock: ManualClock) -> None:
    await send(broker, q, "x")
    [m] = await broker.receive(q)
    await broker.change_visibility(q, [VisibilityEntry(m.receipt_handle, 0)])
    [result] = await broker.change_visibility(q, [VisibilityEntry(m.receipt_handle, 600)])
    assert not result.ok
    assert len(await broker.receive(q)) == 1


async def test_change_visibility_bounds(broker: Broker, q: str) -> None:
    await send(broker, q, "x")
    [m] = await broker.receive(q)
    results = await broker.change_visibility(q, [
        VisibilityEntry(m.receipt_handle, 43_201), VisibilityEntry(m.receipt_handle, -1)])
    assert [r.status for r in results] == ["invalid", "invalid"]
    [ok] = await broker.change_visibility(q, [VisibilityEntry(m.receipt_handle, 43_200)])
    assert ok.ok


async def test_change_visibility_batch(broker: Broker, q: str, clock: ManualClock) -> None:
    await send(broker, q, "a", "b", "c")
    got = await broker.receive(q)
    results = await broker.change_visibility(q, [
        VisibilityEntry(got[0].receipt_handle, 0),
        VisibilityEntry(got[1].receipt_handle, 300),
        VisibilityEntry("junk", 10)])
    assert [r.status for r in results] == ["ok", "ok", "invalid"]
    assert bodies(await broker.receive(q, visibility_timeout=3600)) == [got[0].body.value()]
    clock.advance(30)
    assert bodies(await broker.receive(q)) == [got[2].body.value()]


async def test_retry_keeps_id_and_count_and_records_error(broker: Broker, q: str,
                                                           clock: ManualClock) -> None:
    [message_id] = await send(broker, q, "job")
    [m] = await broker.receive(q)
    result = await broker.retry(q, m.receipt_handle, 120, "SMTP 421: try later")
    assert result.ok
    assert (await broker.queue_stats(q)).delayed == 1
    clock.advance(119)
    assert await broker.receive(q) == []
    clock.advance(1)
    [again] = await broker.receive(q)
    assert again.id == message_id
    assert again.receive_count == 2
    assert again.last_error == "SMTP 421: try later"
    assert again.receipt_handle != m.receipt_handle


async def test_retry_now_and_stale_retry(broker: Broker, q: str, clock: ManualClock) -> None:
    await send(broker, q, "job")
    [m] = await broker.receive(q)
    assert (await broker.retry(q, m.receipt_handle, 0)).ok
    [again] = await broker.receive(q)
    assert again.last_error is None
    # the handle of the ended lease is spent
    assert (await broker.retry(q, m.receipt_handle, 0)).status == "stale"
    assert (await broker.delete(q, [m.receipt_handle]))[0].status == "stale"
    assert (await broker.delete(q, [again.receipt_handle]))[0].ok


async def test_retry_bounds(broker: Broker, q: str) -> None:
    await send(broker, q, "job")
    [m] = await broker.receive(q)
    for bad in (-1, 345_601, True):
        with pytest.raises(InvalidInput):
            await broker.retry(q, m.receipt_handle, bad)
    with pytest.raises(InvalidInput):
        await broker.retry(q, "garbage", 1)
    assert (await broker.queue_stats(q)).in_flight == 1
