"""Flows in storage, on both dialects: a flow is stored whole, an end counts once, and the
node whose wait is over gets its message in the transaction of the last end."""

from __future__ import annotations

import asyncio

import orjson

from conveyor.ids import new_message_ids
from conveyor.models import BodyKind, Queue
from conveyor.storage.base import (
    NO_RECEIVE_LIMIT,
    FlowEnd,
    FlowInsertParams,
    FlowNodeRow,
    NewMessages,
    ReceiveParams,
    Storage,
)
from tests.storage.conftest import make_queue

DAY_MS = 86_400_000


def _node(node: int, job_id: str, queue: Queue, pending: int, on_failure: str = "fail",
          results: str = "none", parents: tuple[int, ...] = ()) -> FlowNodeRow:
    body = orjson.dumps({"task": "t", "args": [], "kwargs": {},
                         "flow": {"node": node}}).decode()
    return FlowNodeRow(node, job_id, "t", queue.id, queue.name, body, 0, results, on_failure,
                       "waiting" if pending else "queued", pending,
                       orjson.dumps(list(parents)).decode())


def _ready(rows: list[FlowNodeRow]) -> NewMessages:
    ready = [r for r in rows if r.state == "queued"]
    n = len(ready)
    return NewMessages(ids=[r.job_id for r in ready], bodies=[r.body for r in ready],
                       kinds=[BodyKind.JSON] * n, attributes=[None] * n,
                       priorities=[0] * n, delays_ms=[0] * n, group_ids=[None] * n,
                       dedup_ids=[None] * n, dedup_keys=[None] * n)


async def _chord(storage: Storage, queue: Queue, t0: int, children: int,
                 policies: list[str] | None = None) -> tuple[str, list[str]]:
    """A chord: `children` ready nodes 0..n-1 and a callback n waiting for all of them."""
    flow_id, *ids = new_message_ids(children + 2, t0)
    rows = [_node(i, ids[i], queue, 0, (policies or ["fail"] * children)[i],
                  parents=(children,)) for i in range(children)]
    rows.append(_node(children, ids[children], queue, children, results="list"))
    await storage.flow_insert(FlowInsertParams(
        flow_id, rows, [(i, children) for i in range(children)],
        [(queue.id, _ready(rows))], DAY_MS, t0))
    return flow_id, ids


async def _visible(storage: Storage, queue: Queue, t0: int) -> list[str]:
    got = await storage.message_receive(ReceiveParams(
        queue.id, queue.name, 1000, 30_000, NO_RECEIVE_LIMIT, None, t0))
    return sorted(m.id for m in got)


async def test_a_chord_releases_its_callback_once_on_the_last_end(storage: Storage,
                                                                  t0: int) -> None:
    queue = await make_queue(storage, "flows", t0)
    flow_id, ids = await _chord(storage, queue, t0, 3)
    assert await _visible(storage, queue, t0) == sorted(ids[:3])
    assert await storage.flow_end_many([FlowEnd(flow_id, 0, True, "10")], t0) == []
    # a repeat of node 0 counts nothing; node 1 and node 0 again in one batch
    assert await storage.flow_end_many([FlowEnd(flow_id, 1, True, "11"),
                                        FlowEnd(flow_id, 0, True, "99")], t0) == []
    assert await storage.flow_end_many([FlowEnd(flow_id, 2, True, '"x"')], t0) == [queue.id]
    assert await _visible(storage, queue, t0) == [ids[3]]
    assert await storage.flow_end_many([FlowEnd(flow_id, 2, True, "1")], t0) == []
    assert await storage.flow_results(flow_id, 3) == [
        ("succeeded", "10"), ("succeeded", "11"), ("succeeded", '"x"')]
    flow = await storage.flow_get(flow_id, t0)
    assert flow is not None and flow.created_at == t0
    assert [n.state for n in flow.nodes] == ["succeeded"] * 3 + ["queued"]
    assert flow.nodes[3].after == [0, 1, 2] and flow.nodes[3].job_id == ids[3]
    assert flow.nodes[0].result == 10
    assert await storage.flow_of_job(ids[1], t0) == flow_id
    assert await storage.flow_of_job(new_message_ids(1, t0)[0], t0) is None


async def test_failure_policies(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "policies", t0)
    # ignore: the callback still runs once the rest end
    flow_id, ids = await _chord(storage, queue, t0, 2, ["ignore", "fail"])
    await storage.flow_end_many([FlowEnd(flow_id, 0, False, None, "boom")], t0)
    assert await storage.flow_end_many([FlowEnd(flow_id, 1, True, "1")], t0) == [queue.id]
    assert await storage.flow_results(flow_id, 2) == [("failed", None), ("succeeded", "1")]
    # continue: the callback is sent at once, and once
    flow_id, ids = await _chord(storage, queue, t0, 2, ["continue", "fail"])
    assert await storage.flow_end_many([FlowEnd(flow_id, 0, False, None, "x")], t0) == [
        queue.id]
    assert await storage.flow_end_many([FlowEnd(flow_id, 1, True, "1")], t0) == []
    # fail: the callback fails without running, and so does what waits for it
    flow_id, ids = new_message_ids(4, t0)[0], new_message_ids(3, t0)
    rows = [_node(0, ids[0], queue, 0, parents=(1,)), _node(1, ids[1], queue, 1, parents=(2,)),
            _node(2, ids[2], queue, 1)]
    await storage.flow_insert(FlowInsertParams(flow_id, rows, [(0, 1), (1, 2)],
                                               [(queue.id, _ready(rows))], DAY_MS, t0))
    assert await storage.flow_end_many([FlowEnd(flow_id, 0, False, None, "bad")], t0) == []
    flow = await storage.flow_get(flow_id, t0)
    assert flow is not None and [n.state for n in flow.nodes] == ["failed"] * 3
    assert flow.nodes[1].error == "step 0 failed: bad"


async def test_concurrent_ends_release_once(storage: Storage, second: Storage,
                                            t0: int) -> None:
    queue = await make_queue(storage, "race", t0)
    n = 200
    flow_id, _ = await _chord(storage, queue, t0, n)
    ends = [FlowEnd(flow_id, i, True, str(i)) for i in range(n)]
    # two connections record overlapping batches (each end twice) at once
    got = await asyncio.gather(*(
        driver.flow_end_many(ends[start:start + 20], t0)
        for start in range(0, n, 20) for driver in (storage, second)))
    assert sum(len(r) for r in got) == 1
    await _visible(storage, queue, t0)  # the children
    flow = await storage.flow_get(flow_id, t0)
    assert flow is not None and flow.nodes[n].state == "queued" and flow.nodes[n].pending == 0


async def test_flows_expire(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "old", t0)
    flow_id, _ = await _chord(storage, queue, t0, 2)
    assert await storage.flow_expire(t0 + DAY_MS - 1, 100) == 0
    assert await storage.flow_expire(t0 + DAY_MS, 100) == 3
    assert await storage.flow_get(flow_id, t0) is None


async def test_cancel_queued_ends_a_flow_node_with_its_delete(storage: Storage,
                                                              t0: int) -> None:
    queue = await make_queue(storage, "flow-cancel", t0)
    flow_id, ids = await _chord(storage, queue, t0, 2, ["fail", "ignore"])
    # node 1 (ignore) cancelled while queued: deleted and ended in one call, parent waits
    assert await storage.flow_cancel_queued(queue.id, [ids[1]], "stop", t0) == ([ids[1]], [])
    flow = await storage.flow_get(flow_id, t0)
    assert flow is not None
    assert [(n.state, n.error) for n in flow.nodes[:2]] == [("queued", None),
                                                            ("failed", "stop")]
    assert flow.nodes[2].pending == 1
    # a leased one is not cancelled here (its worker ends it); a plain id finds no node
    assert await _visible(storage, queue, t0) == [ids[0]]
    assert await storage.flow_cancel_queued(queue.id, [ids[0]], "stop", t0) == ([], [])
    assert await storage.flow_cancel_queued(queue.id, [new_message_ids(1, t0)[0]], "x",
                                            t0) == ([], [])


async def test_a_dead_lettered_flow_node_ends_in_the_claim(storage: Storage, t0: int) -> None:
    queue = await make_queue(storage, "flow-dead", t0)
    dlq = await make_queue(storage, "flow-dead-dlq", t0)
    flow_id, ids = await _chord(storage, queue, t0, 1, ["continue"])

    def receive(at: int) -> ReceiveParams:
        return ReceiveParams(queue.id, queue.name, 10, 1000, 1, dlq.id, at)

    assert [m.id for m in await storage.message_receive(receive(t0))] == [ids[0]]
    # its lease lapses unacknowledged (the worker died); the next claim moves it to the
    # DLQ and, in the same transaction, ends its node: the callback (continue) is released
    second = receive(t0 + 2000)
    got = await storage.message_receive(second)  # SQLite claims the callback here too
    assert second.released == [queue.id]
    flow = await storage.flow_get(flow_id, t0 + 2000)
    assert flow is not None and [n.state for n in flow.nodes] == ["failed", "queued"]
    assert "dead-letter queue after 1 receives" in (flow.nodes[0].error or "")
    got += await storage.message_receive(receive(t0 + 2000))
    assert [m.id for m in got] == [ids[1]]
    assert (await storage.queue_stats(dlq.id, t0 + 2000)).visible == 1
