"""Flows in the broker (`broker.flows`): store a flow, record its jobs' ends, read its tree.

A flow (`conveyor.flows`) is stored whole in one transaction with the messages of the jobs
that wait for nothing; a waiting job's message is kept with its node and inserted by the
transaction that records the end of the last job it waits for (`storage.flow_end_many`).
So the database alone holds a flow's state: any worker may record any end, a worker killed
mid-flow loses nothing (its jobs come back after their leases and end once), and a chord's
callback is sent exactly once. Every input is checked before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from conveyor.broker import validation as v
from conveyor.errors import (
    FlowNodeNotFound,
    FlowNotFound,
    InvalidFlow,
    InvalidInput,
    TooManyEntries,
    UnknownTask,
)
from conveyor.flows import MAX_ERROR, Flow, FlowNode, FlowStep, NodeEnd, check_steps
from conveyor.heartbeats import Heartbeat
from conveyor.ids import new_message_ids
from conveyor.models import Body, BodyKind, SendEntry, dumps_json
from conveyor.storage.base import FlowEnd, FlowInsertParams, FlowNodeRow, NewMessages

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["DEFAULT_KEEP_SECONDS", "Flows"]

DEFAULT_KEEP_SECONDS = 14 * 86_400
"""How long a flow's tree and results are kept after it was made (the longest retention a
queue allows): a flow still waiting then is forgotten."""
MAX_KEEP_SECONDS = 90 * 86_400
_SWEEP_BATCH = 10_000


class Flows:
    """Create flows, record the ends of their jobs, read their trees (`broker.flows`)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def create(self, steps: Sequence[FlowStep], *,
                     keep_seconds: int = DEFAULT_KEEP_SECONDS) -> Flow:
        """Store a flow and send its first jobs; the flow with each node's job id.

        Raises InvalidFlow (FlowCycle, UnknownTask, a bad reference or policy) or
        QueueNotFound, and then nothing is written. A task is unknown when live workers
        read its queue and none of them has it (`_check_tasks`)."""
        check_steps(steps)
        if isinstance(keep_seconds, bool) or not isinstance(keep_seconds, int) or \
                not 60 <= keep_seconds <= MAX_KEEP_SECONDS:
            raise InvalidInput(f"keep_seconds must be 60 to {MAX_KEEP_SECONDS}.",
                               field="keep_seconds")
        broker = self._broker
        queues = {}
        for index, step in enumerate(steps):
            if step.queue not in queues:
                queue = await broker.queue(step.queue)
                if queue.attributes.fifo:
                    raise InvalidFlow("A flow's jobs go to standard queues, not FIFO ones.",
                                      field="queue", index=index)
                queues[step.queue] = queue
        _check_tasks(steps, await broker.workers.list())
        now = broker.now()
        flow_id, *job_ids = new_message_ids(len(steps) + 1, now)
        edges = [(dep, index) for index, step in enumerate(steps) for dep in step.after]
        parents: list[list[int]] = [[] for _ in steps]
        for child, parent in edges:
            parents[child].append(parent)
        rows: list[FlowNodeRow] = []
        ready: dict[int, list[int]] = {}
        for index, step in enumerate(steps):
            queue = queues[step.queue]
            body = _body(flow_id, index, step)
            v.check_send_entry(SendEntry(Body(body, BodyKind.JSON), priority=step.priority),
                               index, queue.attributes)
            state = "waiting" if step.after else "queued"
            rows.append(FlowNodeRow(index, job_ids[index], step.task, queue.id, step.queue,
                                    body, step.priority, step.results, step.on_failure,
                                    state, len(step.after), dumps_json(parents[index])))
            if not step.after:
                ready.setdefault(queue.id, []).append(index)
        batches = [(queue_id, _messages([(job_ids[i], rows[i].body, steps[i].priority)
                                         for i in indexes]))
                   for queue_id, indexes in ready.items()]
        await broker.storage.flow_insert(FlowInsertParams(
            flow_id, rows, edges, batches, keep_seconds * 1000, now))
        for queue_id in ready:
            await broker.signal(queue_id)
        created = now if now is not None else await broker.storage.now()
        after: dict[int, list[int]] = {}
        for child, parent in edges:
            after.setdefault(parent, []).append(child)
        return Flow(flow_id, created, [
            FlowNode(r.node, r.job_id, r.task, r.queue, r.state, sorted(after.get(r.node, [])),
                     r.on_failure, r.pending) for r in rows])

    async def end_many(self, ends: Sequence[NodeEnd]) -> None:
        """Record that flow jobs ended (a node ends once; a repeat changes nothing) and
        send the jobs whose wait is over, in one transaction. Up to 1,000 at a time.

        An end naming a flow or node that is not there records nothing and is no error: a
        flow may expire while its job runs, and its worker's batch of ends (other flows'
        too) must not fail for it, nor come back to run again."""
        if len(ends) > v.MAX_BATCH:
            raise TooManyEntries(f"A batch holds at most {v.MAX_BATCH} ends, not {len(ends)}.")
        ids: dict[str, str] = {}  # a chord's children name one flow: checked once a batch
        rows = [_end_row(end, index, ids) for index, end in enumerate(ends)]
        if not rows:
            return
        released = await self._broker.storage.flow_end_many(rows, self._broker.now())
        for queue_id in released:
            await self._broker.signal(queue_id)

    async def results(self, flow_id: str, node: int) -> list[Any]:
        """The results of the nodes `node` waits for, in node order (None for one that
        failed, or has not ended: a `continue` parent runs before its other children).
        FlowNotFound / FlowNodeNotFound when the flow or the node is not there."""
        flow_id = v.check_message_id(flow_id, "flow_id")
        node = _node(node)
        found = await self._broker.storage.flow_get(flow_id, self._broker.now())
        if found is None or not found.nodes:
            raise FlowNotFound(f"No flow {flow_id} (it may have expired).")
        if node >= len(found.nodes):
            raise FlowNodeNotFound(f"Flow {flow_id} has no node {node} (its nodes are 0 to "
                                   f"{len(found.nodes) - 1}).")
        return [orjson.loads(result) if state == "succeeded" and result is not None else None
                for state, result in await self._broker.storage.flow_results(flow_id, node)]

    async def get(self, flow_id: str) -> Flow:
        """A flow's tree, or FlowNotFound."""
        flow_id = v.check_message_id(flow_id, "flow_id")
        found = await self._broker.storage.flow_get(flow_id, self._broker.now())
        if found is None:
            raise FlowNotFound(f"No flow {flow_id} (it may have expired).")
        return found

    async def of_job(self, job_id: str) -> Flow:
        """The tree of the flow a job belongs to, or FlowNotFound (also for an id that is
        no UUID: a job recorded by hand under an id of its own is in no flow)."""
        try:
            job_id = v.check_message_id(job_id, "job_id")
        except InvalidInput:
            raise FlowNotFound(f"Job {str(job_id)[:80]!r} is not part of a flow.") from None
        flow_id = await self._broker.storage.flow_of_job(job_id, self._broker.now())
        if flow_id is None:
            raise FlowNotFound(f"Job {job_id} is not part of a flow (or it has expired).")
        return await self.get(flow_id)

    async def expire(self, now: int | None = None) -> int:
        """Forget flows past their keep time; called by `Broker.sweep`."""
        at = self._broker.now() if now is None else now
        removed = 0
        while (n := await self._broker.storage.flow_expire(at, _SWEEP_BATCH)):
            removed += n
            if n < _SWEEP_BATCH:
                break
        return removed


def _check_tasks(steps: Sequence[FlowStep], workers: Sequence[Heartbeat]) -> None:
    """UnknownTask for the first step whose queue live workers read while none of them
    has its task (their heartbeats list every task they have). A queue no live worker
    reads says nothing: its jobs wait for a worker, whose App refuses what it lacks."""
    readers: dict[str, set[str]] = {}
    for worker in workers:
        tasks = {c.task for c in worker.counts}
        for queue in worker.queues:
            readers.setdefault(queue, set()).update(tasks)
    for index, step in enumerate(steps):
        known = readers.get(step.queue)
        if known is not None and step.task not in known:
            raise UnknownTask(f"Step {index} names task {step.task!r}, which none of the "
                              f"live workers reading {step.queue!r} has.", field="task",
                              index=index)


def _body(flow_id: str, node: int, step: FlowStep) -> str:
    # The wire format of `worker.task`, plus where the job sits in its flow.
    try:
        return dumps_json({"task": step.task, "args": list(step.args),
                           "kwargs": dict(step.kwargs),
                           "flow": {"id": flow_id, "node": node, "results": step.results}})
    except (TypeError, ValueError) as exc:
        raise InvalidFlow(f"A step's arguments must be JSON values: {exc}.", field="args",
                          index=node) from exc


def _messages(items: list[tuple[str, str, int]]) -> NewMessages:
    # JSON messages with the flow's ids, due now, without deduplication or claims.
    n = len(items)
    return NewMessages(ids=[i[0] for i in items], bodies=[i[1] for i in items],
                       kinds=[int(BodyKind.JSON)] * n, attributes=[None] * n,
                       priorities=[i[2] for i in items], delays_ms=[0] * n,
                       group_ids=[None] * n, dedup_ids=[None] * n, dedup_keys=[None] * n)


def _node(node: Any) -> int:
    if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < 2**31:
        raise InvalidInput("node must be a whole number of at least 0.", field="node")
    return node


def _end_row(end: NodeEnd, index: int, ids: dict[str, str]) -> FlowEnd:
    raw = end.flow_id
    flow_id = ids.get(raw) if isinstance(raw, str) else None
    if flow_id is None:
        flow_id = v.check_message_id(raw, "flow_id")
        ids[raw] = flow_id
    node = _node(end.node)
    result = None
    if end.ok and end.result is not None:
        result = v.encode_result(end.result, index)
    error = None if end.error is None else str(end.error)[:MAX_ERROR]
    return FlowEnd(flow_id, node, bool(end.ok), result, error)
