"""SQLite half of flows (`conveyor.flows`): store a flow, record ends, read the tree.

A mixin of `SqliteStorage`. Each write is one BEGIN IMMEDIATE transaction in the storage's
thread; SQLite admits one writer across every process sharing the file, so an end's steps
(`storage.flow_steps`) run row by row with nothing in between, and a released node's
message is inserted in the same transaction.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from itertools import repeat

import orjson

from conveyor.flows import Flow
from conveyor.storage import flow_steps
from conveyor.storage.params import FlowEnd, FlowInsertParams, NewMessages
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase

Q = load_queries("conveyor.storage.sqlite", "flows.sql")
_MESSAGES = load_queries("conveyor.storage.sqlite", "queries.sql")


def _insert_messages(db: sqlite3.Connection, queue_id: int, batch: NewMessages,
                     at: int) -> None:
    db.executemany(_MESSAGES["message_insert"], zip(
        (uuid.UUID(i).bytes for i in batch.ids), repeat(queue_id), batch.priorities,
        [at + d for d in batch.delays_ms], repeat(at), batch.kinds, batch.bodies,
        batch.attributes, batch.group_ids, batch.dedup_ids, repeat(None)))


def end_in(db: sqlite3.Connection, ends: Sequence[FlowEnd], at: int) -> list[int]:
    """`flow_end_many` inside the caller's write transaction; the queue ids released."""
    released: list[tuple[int, str, str, int]] = []
    todo = flow_steps.unique_ends(ends)
    while todo:
        ended = db.execute(Q["flow_node_end"], {"now": at, "ends": orjson.dumps([
            {"flow_id": e.flow_id, "node": e.node, "ok": e.ok, "result": e.result,
             "error": e.error} for e in todo]).decode()}).fetchall()
        counts, todo = flow_steps.plan(todo, ended)
        if counts:
            got = db.execute(Q["flow_node_count"], {"now": at, "counts": orjson.dumps([
                {"flow_id": f, "node": n, "n": c}
                for (f, n), c in sorted(counts.items())]).decode()}).fetchall()
            released += [(int(r[1]), str(r[2]), str(r[3]), int(r[4]))
                         for r in got if r[0] == "queued"]
    batches = flow_steps.released_batches(released)
    for queue_id, batch in batches.items():
        _insert_messages(db, queue_id, batch, at)
    return list(batches)


def fail_jobs_in(db: sqlite3.Connection, job_ids: Sequence[str], error: str, at: int
                 ) -> list[int]:
    """Inside the caller's write transaction: the failed ends of the flow nodes among
    these jobs (none for plain jobs: one index probe each); the queue ids released."""
    if not job_ids:
        return []
    found = db.execute(Q["flow_node_of_jobs"],
                       {"ids": orjson.dumps(list(job_ids)).decode()}).fetchall()
    return end_in(db, flow_steps.failed_ends(found, error), at) if found else []


class SqliteFlows(SqliteBase):
    """Flow nodes and edges in SQLite."""

    async def flow_insert(self, params: FlowInsertParams) -> None:
        """The nodes, the edges and the ready nodes' messages, in one transaction."""
        at = self._now(params.now)
        expires = at + params.keep_ms
        fid = params.flow_id
        nodes = [(fid, n.node, n.job_id, n.task, n.queue_id, n.queue,
                  n.body if n.state == "waiting" else None, n.priority, n.results,
                  n.on_failure, n.parents, n.state, n.pending, at, at, expires)
                 for n in params.nodes]
        edges = [(fid, child, parent, expires) for child, parent in params.edges]

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.executemany(Q["flow_node_insert"], nodes)
                db.executemany(Q["flow_edge_insert"], edges)
                for queue_id, batch in params.ready:
                    _insert_messages(db, queue_id, batch, at)
        await self._run(run)

    async def flow_end_many(self, ends: Sequence[FlowEnd], now: int | None) -> list[int]:
        """Record ends (each node once) and release the nodes whose wait is over; the
        queue ids that got messages. Two statements a round, whatever the batch's size."""
        at = self._now(now)

        def run(db: sqlite3.Connection) -> list[int]:
            with self._write(db):
                return end_in(db, ends, at)
        return await self._run(run)

    async def flow_cancel_queued(self, queue_id: int, job_ids: Sequence[str], error: str,
                                 now: int | None) -> tuple[list[str], list[int]]:
        """Delete these jobs' messages unless in flight (`message_delete_queued`) and, in
        the same transaction, record the failed end of each deleted one that is a flow
        node; (the ids deleted, the queue ids that got released messages)."""
        at = self._now(now)
        args = {"queue_id": queue_id, "now": at}

        def run(db: sqlite3.Connection) -> tuple[list[str], list[int]]:
            with self._write(db):
                deleted = [i for i in job_ids if db.execute(
                    _MESSAGES["message_delete_queued"],
                    {**args, "id": uuid.UUID(i).bytes}).rowcount > 0]
                return deleted, fail_jobs_in(db, deleted, error, at)
        return await self._run(run)

    async def flow_results(self, flow_id: str, node: int) -> list[tuple[str, str | None]]:
        """(state, result as JSON text) of each node `node` waits for, in node order."""
        args = {"flow_id": flow_id, "node": node}
        return await self._run(lambda db: [
            (str(r[0]), r[1]) for r in db.execute(Q["flow_results"], args)])

    async def flow_get(self, flow_id: str, now: int | None) -> Flow | None:
        """The flow's nodes and edges, or None when unknown or expired."""
        args = {"flow_id": flow_id, "now": self._now(now)}

        def run(db: sqlite3.Connection) -> Flow | None:
            nodes = db.execute(Q["flow_nodes"], args).fetchall()
            edges = db.execute(Q["flow_edges"], {"flow_id": flow_id}).fetchall()
            return flow_steps.flow_from_rows(flow_id, nodes, edges)
        return await self._run(run)

    async def flow_of_job(self, job_id: str, now: int | None) -> str | None:
        """The id of the flow a job belongs to, if any."""
        args = {"job_id": job_id, "now": self._now(now)}

        def run(db: sqlite3.Connection) -> str | None:
            row = db.execute(Q["flow_of_job"], args).fetchone()
            return str(row[0]) if row else None
        return await self._run(run)

    async def flow_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` expired nodes (and as many edges); how many nodes went."""
        args = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                db.execute(Q["flow_edge_expire"], args)
                return db.execute(Q["flow_node_expire"], args).rowcount
        return await self._run(run)


__all__ = ["SqliteFlows", "end_in", "fail_jobs_in"]
