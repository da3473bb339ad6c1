"""The run loop's side of flows: a flow job's results in, its end out.

A flow job's body names its node (`"flow": {"id", "node", "results"}`, see
`broker.flows`). Before it runs, a job that waits for others gets their results as its
first argument. When it succeeds, its end is recorded in batches (`FlowEnds`) and only then
is the message acknowledged: a worker killed in between leaves the message to come back,
and the second end of the same node changes nothing. A job that fails for good records its
failed end at once, before it is dead-lettered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

from conveyor.client.source import Source
from conveyor.flows import MAX_RESULT_BYTES, NodeEnd
from conveyor.models import dumps_json
from conveyor.reach import Reach

log = logging.getLogger("conveyor.worker")

__all__ = ["MAX_BATCH", "FlowEnds", "FlowRef", "flow_ref", "with_results"]

MAX_BATCH = 1000  # ends per call, the most broker.flows.end_many takes

FlowRef = tuple[str, int, str]
"""Where a job sits in its flow: (flow id, node, how it gets results)."""


def flow_ref(data: dict[str, Any]) -> FlowRef | None:
    """The flow reference of a decoded job body, or None for a plain job."""
    ref = data.get("flow")
    if ref is None:
        return None
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str) or \
            not isinstance(ref.get("node"), int):
        raise ValueError("A job's 'flow' must name its flow 'id' and 'node'.")
    _check_flow_id(ref["id"])
    return ref["id"], ref["node"], str(ref.get("results", "none"))


@functools.lru_cache(maxsize=256)
def _check_flow_id(flow_id: str) -> None:
    """ValueError: not a flow this broker made (the job is dead-lettered). Cached: a
    chord's children all name one flow (an error is not cached)."""
    uuid.UUID(flow_id)


async def with_results(source: Source, ref: FlowRef, args: list[Any]) -> list[Any]:
    """The job's arguments, with the results it waits for first (if it gets them)."""
    flow_id, node, mode = ref
    if mode == "none":
        return args
    results = await source.flows.results(flow_id, node)
    return [results[0] if mode == "one" and results else results, *args]


def success(ref: FlowRef, result: Any) -> NodeEnd:
    """A succeeded node's end. A result that is not JSON, or over MAX_RESULT_BYTES, is
    recorded as None (one such end would fail its whole batch)."""
    if result is None:  # (most chord children's)
        return NodeEnd(ref[0], ref[1], True, None)
    try:
        too_big = len(dumps_json(result).encode()) > MAX_RESULT_BYTES
    except (TypeError, ValueError):
        too_big = True
    if too_big:
        log.warning("flow %s node %d returned a value that is not JSON or over %d bytes; "
                    "recorded as None", ref[0], ref[1], MAX_RESULT_BYTES)
        result = None
    return NodeEnd(ref[0], ref[1], True, result)


async def record_failure(source: Source, ref: FlowRef, error: str,
                         reach: Reach | None = None) -> None:
    """Record a node's failed end now (before the job is dead-lettered or dropped); a
    failure is logged by `reach` (the worker's) when the source is down."""
    try:
        await source.flows.end_many([NodeEnd(ref[0], ref[1], False, None, error)])
    except Exception as exc:
        (reach or Reach()).error(exc, "recording the failed end of flow %s node %d failed",
                                 *ref[:2])


class FlowEnds:
    """Succeeded flow jobs' ends, recorded in batches; each job's message is acknowledged
    (through `ack`) once its end is stored.

    One batch at a time per worker: the ends of a chord's children all lower the same
    parent row, so concurrent batches would only queue on its lock; meanwhile the next
    batch grows, and one transaction records it whole."""

    def __init__(self, source: Source, ack: Callable[[str], None], *, name: str,
                 interval: float = 0.02, lost: Callable[[str], None] | None = None,
                 reach: Reach | None = None) -> None:
        self._source = source
        self._ack = ack
        self._lost = lost  # told each job of a batch not stored (it comes back instead)
        self._name = name
        self._interval = interval
        self._reach = reach or Reach()  # the worker's: logs an outage once, not per batch
        self._items: list[tuple[NodeEnd, str]] = []
        self._flusher: asyncio.Task[None] | None = None

    def add(self, end: NodeEnd, receipt_handle: str) -> None:
        """Record `end`, then acknowledge the job."""
        self._items.append((end, receipt_handle))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(self._interval))

    async def _flush_all(self, wait: float) -> None:
        await asyncio.sleep(wait)  # let a batch gather
        while self._items:
            items, self._items = self._items[:MAX_BATCH], self._items[MAX_BATCH:]
            try:
                await self._source.flows.end_many([end for end, _ in items])
            except Exception as exc:  # not acknowledged: the jobs come back and end again
                self._reach.error(exc, "%s: a batch of %d failed", self._name, len(items))
                if self._lost is not None:
                    for _, handle in items:
                        self._lost(handle)
                continue
            for _, handle in items:
                self._ack(handle)

    async def drain(self) -> None:
        """Flush what is queued (call before draining the acknowledgements)."""
        if self._items and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_all(0))
        if self._flusher is not None:
            await self._flusher
