"""PostgreSQL half of flows (`conveyor.flows`): store a flow, record ends, read the tree.

A mixin of `PostgresStorage`. An end is a few array statements in one transaction
(`storage.flow_steps`): the ended nodes, their edges, the parents' counts (rows locked in
(flow, node) order, so concurrent ends serialise on a chord's parent and never deadlock),
and the released nodes' messages, inserted in that same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.flows import Flow
from conveyor.storage import flow_steps
from conveyor.storage.params import FlowEnd, FlowInsertParams, NewMessages, ReceiveParams
from conveyor.storage.postgres.bound import Executor
from conveyor.storage.postgres.postgres_queues import PostgresQueues
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "flows.sql")
JOBS = load_queries("conveyor.storage.postgres", "jobs.sql")
# A batch of ends (or a parent's children) names up to thousands of nodes by primary key;
# without statistics on fresh rows the planner may join them against every node of every
# kept flow instead (measured: 282 ms for 1,000 ends with 40,000 nodes kept, growing with
# the table). Each must be a key probe: a plain index scan (a bitmap scan per probe sorts
# and rechecks one row), driven by the sorted arrays, so rows are locked in their order.
END_PLAN = ("SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; "
            "SET LOCAL enable_mergejoin = off; SET LOCAL enable_bitmapscan = off")


class PostgresFlows(PostgresQueues):
    """Flow nodes and edges in PostgreSQL."""

    async def _insert(self, conn: Executor | None, q: dict[str, str], queue_id: int,
                      batch: NewMessages, now: int | None) -> None:
        """Insert messages (PostgresStorage's)."""
        raise NotImplementedError

    async def flow_insert(self, params: FlowInsertParams) -> None:
        """The nodes, the edges and the ready nodes' messages, in one transaction."""
        nodes = params.nodes
        fid, keep, now = params.flow_id, params.keep_ms, params.now
        async with self._tx() as conn:
            await conn.execute(
                Q["flow_node_insert"], fid, keep, now, [n.node for n in nodes],
                [n.job_id for n in nodes], [n.task for n in nodes],
                [n.queue_id for n in nodes], [n.queue for n in nodes],
                [n.body if n.state == "waiting" else None for n in nodes],
                [n.priority for n in nodes], [n.results for n in nodes],
                [n.on_failure for n in nodes], [n.parents for n in nodes],
                [n.state for n in nodes], [n.pending for n in nodes])
            if params.edges:
                await conn.execute(Q["flow_edge_insert"], fid, keep, now,
                                   [c for c, _ in params.edges], [p for _, p in params.edges])
            for queue_id, batch in params.ready:
                await self._insert(conn, await self._q(queue_id), queue_id, batch, now)

    async def flow_end_many(self, ends: Sequence[FlowEnd], now: int | None) -> list[int]:
        """Record ends (each node once) and release the nodes whose wait is over; the
        queue ids that got messages. Two statements a round, whatever the batch's size."""
        async with self._tx() as conn:
            return await self._flow_end(conn, ends, now)

    async def flow_cancel_queued(self, queue_id: int, job_ids: Sequence[str], error: str,
                                 now: int | None) -> tuple[list[str], list[int]]:
        """Delete these jobs' messages unless in flight (`message_delete_queued`) and, in
        the same transaction, record the failed end of each deleted one that is a flow
        node; (the ids deleted, the queue ids that got released messages)."""
        sql = (await self._q(queue_id))["message_delete_queued"]
        async with self._tx() as conn:
            await conn.execute(END_PLAN)  # by id: index probes (BY_ID_BEGIN's reason)
            deleted = [str(r[0]) for r in await conn.fetch(sql, queue_id, list(job_ids), now)]
            released = await self._flow_fail_jobs(conn, deleted, error, now)
        return deleted, released

    async def _flow_dead_letter(self, q: dict[str, str], params: ReceiveParams,
                                job_ids: Sequence[Any]) -> list[int]:
        """Move the over-received flow nodes and tracked jobs a claim left in place
        (migrations 0024, 0029) to the dead-letter queue and record their ends (a flow
        node's failed end, a tracked job's dead), in one transaction; the queue ids
        released. On failure they stay over the limit and the next claim returns them."""
        async with self._tx() as conn:
            await conn.execute(END_PLAN)  # by id: index probes
            moved = [r[0] for r in await conn.fetch(
                q["message_dead_letter_ids"], params.queue_id, list(job_ids),
                params.dead_letter_queue_id, params.max_receive_count, params.now)]
            error = flow_steps.dead_lettered(params.max_receive_count)
            await self._jobs_dead(conn, moved, error, params.max_receive_count, params.now)
            return await self._flow_fail_jobs(conn, moved, error, params.now)

    @staticmethod
    async def _jobs_dead(conn: Executor, job_ids: Sequence[Any], error: str, receives: int,
                         now: int | None) -> None:
        """Inside the caller's transaction: the tracked jobs among these dead-lettered
        messages end `dead` (plain messages: one index probe each, nothing written)."""
        if job_ids:
            await conn.execute(JOBS["job_dead_letter_many"], [str(i) for i in job_ids],
                               error, now, receives)

    async def _flow_fail_jobs(self, conn: Executor, job_ids: Sequence[Any], error: str,
                              now: int | None) -> list[int]:
        """Inside the caller's transaction: the failed ends of the flow nodes among these
        jobs (none for plain jobs: one index probe each); the queue ids released."""
        if not job_ids:
            return []
        found = await conn.fetch(Q["flow_node_of_jobs"], list(job_ids))
        if not found:
            return []
        return await self._flow_end(conn, flow_steps.failed_ends(found, error), now)

    async def _flow_end(self, conn: Executor, ends: Sequence[FlowEnd], now: int | None
                        ) -> list[int]:
        """`flow_end_many` inside the caller's transaction."""
        released: list[tuple[int, str, str, int]] = []
        await conn.execute(END_PLAN)
        todo = flow_steps.unique_ends(ends)
        while todo:
            ended = await conn.fetch(
                Q["flow_node_end"], [e.flow_id for e in todo], [e.node for e in todo],
                [e.ok for e in todo], [e.result for e in todo], [e.error for e in todo],
                now)
            counts, todo = flow_steps.plan(todo, ended)
            if counts:
                keys = sorted(counts)
                for row in await conn.fetch(
                        Q["flow_node_count"], [k[0] for k in keys], [k[1] for k in keys],
                        [counts[k] for k in keys], now):
                    if row[0] == "queued":
                        released.append((int(row[1]), str(row[2]), str(row[3]),
                                         int(row[4])))
        batches = flow_steps.released_batches(released)
        for queue_id, batch in batches.items():
            await self._insert(conn, await self._q(queue_id), queue_id, batch, now)
        return list(batches)

    async def flow_results(self, flow_id: str, node: int) -> list[tuple[str, str | None]]:
        """(state, result as JSON text) of each node `node` waits for, in node order: the
        range of nodes the children span when they fill most of it (a chord's), else one
        key probe per child (see flows.sql)."""
        async with self._tx() as conn:
            await conn.execute(END_PLAN)  # key order, whatever the statistics say
            children = [int(r[0]) for r in await conn.fetch(Q["flow_children"], flow_id,
                                                            node)]
            if flow_steps.dense(children):
                return flow_steps.results_in_order(children, await conn.fetch(
                    Q["flow_node_range"], flow_id, children[0], children[-1]))
            return [(str(r[0]), r[1])
                    for r in await conn.fetch(Q["flow_results"], flow_id, node)]

    async def flow_get(self, flow_id: str, now: int | None) -> Flow | None:
        """The flow's nodes and edges, or None when unknown or expired."""
        nodes: list[Any] = await self._fetch(Q["flow_nodes"], flow_id, now)
        if not nodes:
            return None
        edges = await self._fetch(Q["flow_edges"], flow_id)
        return flow_steps.flow_from_rows(flow_id, nodes, edges)

    async def flow_of_job(self, job_id: str, now: int | None) -> str | None:
        """The id of the flow a job belongs to, if any."""
        row = await self._fetchrow(Q["flow_of_job"], job_id, now)
        return str(row[0]) if row else None

    async def flow_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` expired nodes (and as many edges); how many nodes went."""
        async with self._tx() as conn:
            await conn.execute(Q["flow_edge_expire"], now, limit)
            tag = await conn.execute(Q["flow_node_expire"], now, limit)
        return int(tag.split()[-1])


__all__ = ["PostgresFlows"]
