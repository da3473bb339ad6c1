"""Unique and debounce claims in the send path (`storage.claims`), on both dialects."""

from __future__ import annotations

import asyncio
import dataclasses

from conveyor.models import Claim, Queue
from conveyor.storage.base import (
    NO_RECEIVE_LIMIT,
    MessagePeekParams,
    MessageRetryParams,
    MessageSendParams,
    ReceiveParams,
    Storage,
)
from tests.storage.conftest import batch, make_queue
from tests.storage.test_messages import lease


async def send_claimed(storage: Storage, queue: Queue, now: int, bodies: list[str],
                       claims: list[Claim | None], delays_ms: list[int] | None = None,
                       dedup: list[str | None] | None = None) -> list[tuple[str, bool]]:
    made = dataclasses.replace(batch(now, bodies, delays_ms=delays_ms, dedup=dedup),
                               claims=claims)
    results = await storage.message_send_many(MessageSendParams(queue.id, made, now))
    return [(r.id, r.duplicate) for r in results]


async def bodies(storage: Storage, queue: Queue, now: int) -> list[str]:
    return [p.body.text for p in await storage.message_peek(
        MessagePeekParams(queue.id, 100, None, now))]


async def test_a_held_unique_key_stores_nothing_and_answers_the_holder(
        storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    key = Claim("unique:a", 60)
    [(first, dup)] = await send_claimed(storage, queue, t0, ["a"], [key])
    assert not dup
    got = await send_claimed(storage, queue, t0 + 1_000, ["b", "c", "d"],
                             [key, None, Claim("unique:b", 60)])
    assert got[0] == (first, True)
    assert not got[1][1] and not got[2][1]
    assert await bodies(storage, queue, t0 + 1_000) == ["a", "c", "d"]
    # Inside one batch the first message of a key wins.
    twice = await send_claimed(storage, queue, t0, ["e", "f"],
                               [Claim("unique:c", 60), Claim("unique:c", 60)])
    assert twice[1] == (twice[0][0], True) and not twice[0][1]


async def test_a_unique_key_lapses_and_is_released_by_its_holder_only(
        storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    key = Claim("unique:a", 60)
    [(first, _)] = await send_claimed(storage, queue, t0, ["a"], [key])
    [(second, dup)] = await send_claimed(storage, queue, t0 + 60_000, ["b"], [key])
    assert not dup and second != first  # lapsed after 60 s
    assert not await storage.claim_release("unique:a", first)  # not the holder any more
    assert await storage.claim_release("unique:a", second)
    [(third, dup)] = await send_claimed(storage, queue, t0 + 61_000, ["c"], [key])
    assert not dup and third != second


async def test_a_unique_key_holds_at_least_as_long_as_the_delay(
        storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    key = Claim("unique:a", 1)
    [(first, _)] = await send_claimed(storage, queue, t0, ["a"], [key], [30_000])
    assert await send_claimed(storage, queue, t0 + 29_000, ["b"], [key]) == [(first, True)]


async def test_dedup_and_claims_in_one_batch(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    got = await send_claimed(storage, queue, t0, ["a", "b", "c"],
                             [Claim("unique:a", 60), Claim("unique:a", 60), None],
                             dedup=["d1", "d1", None])
    assert got[1] == (got[0][0], True) and not got[2][1]
    assert await bodies(storage, queue, t0) == ["a", "c"]


async def test_debounce_replaces_the_waiting_message(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    key = Claim("debounce:a", 10, replace=True)
    [(first, dup)] = await send_claimed(storage, queue, t0, ["v1"], [key], [10_000])
    assert not dup
    [(again, dup)] = await send_claimed(storage, queue, t0 + 5_000, ["v2"], [key], [10_000])
    assert (again, dup) == (first, True)
    [peeked] = await storage.message_peek(MessagePeekParams(queue.id, 10, None, t0))
    assert (peeked.body.text, peeked.visible_at) == ("v2", t0 + 15_000)
    # Two in one batch: the last one wins, both answer its id.
    got = await send_claimed(storage, queue, t0 + 6_000, ["v3", "v4"], [key, key],
                             [10_000, 10_000])
    assert got == [(first, True), (first, True)]
    assert await bodies(storage, queue, t0) == ["v4"]


async def test_debounce_leaves_a_received_message_alone(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    key = Claim("debounce:a", 10, replace=True)
    [(first, _)] = await send_claimed(storage, queue, t0, ["v1"], [key], [10_000])
    [got] = await storage.message_receive(ReceiveParams(
        queue.id, "q", 10, 30_000, NO_RECEIVE_LIMIT, None, t0 + 10_000))
    assert got.id == first
    [(second, dup)] = await send_claimed(storage, queue, t0 + 11_000, ["v2"], [key],
                                         [10_000])
    assert not dup and second != first
    [(third, dup)] = await send_claimed(storage, queue, t0 + 12_000, ["v3"], [key],
                                        [10_000])
    assert (third, dup) == (second, True)
    assert sorted(await bodies(storage, queue, t0 + 12_000)) == ["v1", "v3"]


async def test_expired_claims_are_swept(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    await send_claimed(storage, queue, t0, ["a", "b"],
                       [Claim("unique:a", 1), Claim("unique:b", 100)])
    assert await storage.claim_expire(t0 + 1_000, 100) == 1
    assert await storage.claim_expire(t0 + 1_000, 100) == 0


async def test_one_of_two_concurrent_senders_wins_a_key(
        storage: Storage, second: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    for round_ in range(5):
        key = Claim(f"unique:{round_}", 60)
        got = await asyncio.gather(
            send_claimed(storage, queue, t0, ["a"], [key]),
            send_claimed(second, queue, t0, ["b"], [key]))
        (one, dup1), (two, dup2) = got[0][0], got[1][0]
        assert one == two and dup1 != dup2
    assert len(await bodies(storage, queue, t0)) == 5



async def test_a_snooze_gives_the_receive_back(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    await send_claimed(storage, queue, t0, ["a"], [None])
    params = ReceiveParams(queue.id, "q", 10, 30_000, NO_RECEIVE_LIMIT, None, t0)
    for refund, count in ((True, 0), (False, 1)):
        [got] = await storage.message_receive(params)
        assert await storage.message_retry(MessageRetryParams(
            queue.id, lease(got), 0, "later", t0, refund=refund))
        [peeked] = await storage.message_peek(MessagePeekParams(queue.id, 10, None, t0))
        assert peeked.receive_count == count
