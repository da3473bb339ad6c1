"""What a flow node's end does to the nodes waiting for it: the logic both dialects run
inside the transaction that records the end (`flow_end_many`).

An end is recorded once: the node's row moves from queued (or waiting) to succeeded or
failed only if it has not ended yet, so a job that runs twice (its worker died before the
acknowledgement) counts once. In the same transaction each waiting parent's `pending`
count drops; the parent whose count reaches 0 becomes queued and its message is inserted,
so its job is sent exactly once, whichever process recorded the last end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from conveyor.flows import MAX_ERROR, Flow, FlowNode
from conveyor.models import BodyKind
from conveyor.storage.params import FlowEnd, NewMessages

__all__ = ["RELEASE_NOW", "count_of", "dead_lettered", "dense", "failed_ends", "failed_parent",
           "flow_from_rows", "messages_of", "plan", "released_batches", "results_in_order",
           "unique_ends"]

RELEASE_NOW = 1 << 30
"""A decrement larger than any pending count: the parent is released at once."""


def dead_lettered(max_receive_count: int) -> str:
    """The error recorded for a flow node whose message the broker moved to the dead-letter
    queue after `max_receive_count` receives without an acknowledgement (its worker died on
    each attempt, so none recorded the failure)."""
    return (f"Moved to the dead-letter queue after {max_receive_count} receives without "
            "an acknowledgement (its worker died or went silent on each attempt).")


def failed_ends(rows: Iterable[Sequence[Any]], error: str) -> list[FlowEnd]:
    """Failed ends, with `error`, of the nodes (flow_id, node) found by their jobs' ids
    (flow_node_of_jobs): a cancelled or dead-lettered job that no worker will end."""
    return [FlowEnd(str(r[0]), int(r[1]), False, None, error[:MAX_ERROR]) for r in rows]


def count_of(ok: bool, policy: str) -> int | None:
    """How much a child's end lowers its parents' pending counts: 1, `RELEASE_NOW` (a
    failed child whose policy is `continue`), or None: the parents fail (policy `fail`)."""
    if ok or policy == "ignore":
        return 1
    if policy == "continue":
        return RELEASE_NOW
    return None


def failed_parent(flow_id: str, parent: int, child: int, error: str | None) -> FlowEnd:
    """The end of a parent that fails because its child `child` failed."""
    why = f": {error}" if error else ""
    return FlowEnd(flow_id, parent, False, None, f"step {child} failed{why}"[:4000])


def unique_ends(ends: Iterable[FlowEnd]) -> list[FlowEnd]:
    """The first end of each node, sorted by (flow, node) so that concurrent transactions
    lock rows in one order."""
    seen: dict[tuple[str, int], FlowEnd] = {}
    for end in ends:
        seen.setdefault((end.flow_id, end.node), end)
    return [seen[k] for k in sorted(seen)]


def plan(todo: Sequence[FlowEnd], ended: Iterable[Sequence[Any]]
         ) -> tuple[dict[tuple[str, int], int], list[FlowEnd]]:
    """One round of an end: from the rows that did end now (flow_id, node, on_failure,
    parents as JSON), how much each parent's count drops, and the parents that fail (the
    next round's ends)."""
    by_key = {(e.flow_id, e.node): e for e in todo}
    counts: dict[tuple[str, int], int] = {}
    failed: list[FlowEnd] = []
    for flow_id, node, policy, parents in ended:
        end = by_key[(str(flow_id), int(node))]
        n = count_of(end.ok, str(policy))
        for parent in orjson.loads(parents):
            if n is None:
                failed.append(failed_parent(end.flow_id, parent, end.node, end.error))
            else:
                key = (end.flow_id, parent)
                counts[key] = min(counts.get(key, 0) + n, RELEASE_NOW)
    return counts, unique_ends(failed)


def released_batches(rows: Iterable[tuple[int, str, str, int]]
                     ) -> dict[int, NewMessages]:
    """The messages of released nodes `(queue_id, job_id, body, priority)`, by queue."""
    by_queue: dict[int, list[tuple[str, str, int]]] = {}
    for queue_id, job_id, body, priority in rows:
        by_queue.setdefault(queue_id, []).append((job_id, body, priority))
    return {queue_id: messages_of(items) for queue_id, items in by_queue.items()}


def messages_of(items: list[tuple[str, str, int]]) -> NewMessages:
    """A batch of JSON messages with the given ids, bodies and priorities, due now."""
    n = len(items)
    none: list[str | None] = [None] * n
    return NewMessages(ids=[i[0] for i in items], bodies=[i[1] for i in items],
                       kinds=[int(BodyKind.JSON)] * n, attributes=list(none),
                       priorities=[i[2] for i in items], delays_ms=[0] * n,
                       group_ids=list(none), dedup_ids=list(none), dedup_keys=list(none))



def dense(children: Sequence[int]) -> bool:
    """True when a parent's children (sorted) fill most of the node range they span (a
    chord's do: nodes 0..n-1): one range scan then reads fewer index entries than a probe
    per child does."""
    return bool(children) and children[-1] - children[0] + 1 <= 2 * len(children)


def results_in_order(children: Sequence[int], rows: Iterable[Sequence[Any]]
                     ) -> list[tuple[str, str | None]]:
    """(state, result) of each child in order, from the rows (node, state, result) of a
    node range that holds them all (other nodes of the range are passed over)."""
    if children and children[-1] - children[0] + 1 == len(children):
        return [(r[1], r[2]) for r in rows]  # the range is the children (a chord's)
    by_node = {int(r[0]): (str(r[1]), r[2]) for r in rows}
    return [by_node[c] for c in children if c in by_node]


def flow_from_rows(flow_id: str, nodes: Sequence[Any], edges: Sequence[Any]) -> Flow | None:
    """A `Flow` from the rows of flow_nodes (node, job_id, task, queue, state, on_failure,
    pending, result, error, created_at) and flow_edges (child, parent); None without
    nodes."""
    if not nodes:
        return None
    after: dict[int, list[int]] = {}
    for child, parent in edges:
        after.setdefault(int(parent), []).append(int(child))
    return Flow(flow_id, int(nodes[0][9]), [
        FlowNode(int(r[0]), str(r[1]), r[2], r[3], r[4], after.get(int(r[0]), []), r[5],
                 int(r[6]), None if r[7] is None else orjson.loads(r[7]), r[8])
        for r in nodes])
