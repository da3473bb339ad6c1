"""PostgreSQL half of the notification path's combined writes: a mixin of
`PostgresStorage`. The enqueue is one statement (notify_tx.sql); a lane's finish and next
begin one statement made of ledger.sql's two; its last finish and its acks ledger.sql's
and queries.sql's statements one after the other."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from conveyor.errors import StorageError
from conveyor.ledger import DeliveryUpdate, NewDelivery
from conveyor.models import SendResult
from conveyor.storage.base import DeliveryPutParams, Lease, MessageSendParams
from conveyor.storage.postgres.postgres_base import translated
from conveyor.storage.postgres.postgres_ledger import PostgresLedger
from conveyor.storage.postgres.postgres_queues import PostgresQueues
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "notify_tx.sql")
LQ = load_queries("conveyor.storage.postgres", "ledger.sql")


def _code(sql: str) -> str:
    """A statement without its comment lines (so that it can be nested)."""
    return "\n".join(line for line in sql.splitlines()
                     if not line.lstrip().startswith("--")).strip().rstrip(";")


def _finish_begin() -> str:
    """ledger.sql's delivery_begin_many ($1-$5) with its delivery_finish_many ($6-$10) as
    one more data-modifying CTE: one statement, one round trip, taken by name so that
    the two stay the ledger's own."""
    begin, finish = _code(LQ["delivery_begin_many"]), _code(LQ["delivery_finish_many"])
    if not begin.startswith("WITH ") or not finish.startswith("UPDATE "):
        raise RuntimeError("ledger.sql: delivery_begin_many must be a WITH statement and "
                           "delivery_finish_many an UPDATE, to be combined")
    shifted = re.sub(r"\$(\d+)", lambda m: f"${int(m[1]) + 5}", finish)
    return f"WITH finished AS ({shifted}), {begin.removeprefix('WITH ')}"


FINISH_BEGIN = _finish_begin()
UNLOGGED = {name: sql.replace("conveyor_messages", "conveyor_messages_unlogged")
            for name, sql in Q.items()}  # this file's statements, as postgres_queues' own
# A concurrent enqueue of the same delivery ids fails the statement (a unique violation);
# the next run sees them recorded. More than a few in a row is not a race but a fault.
_RACES = 5


class PostgresNotifyTx(PostgresLedger, PostgresQueues):
    """A notifier's enqueue in one round trip; a delivery lane's finish and ack."""

    @staticmethod
    def _insert_args(queue_id: int, batch: Any, now: int | None) -> tuple[Any, ...]:
        raise NotImplementedError  # PostgresStorage's: message_insert's parameters

    async def message_delete_many(self, queue_id: int, leases: Sequence[Lease]) -> set[Lease]:
        raise NotImplementedError  # PostgresStorage's

    async def delivery_put_send(self, put: DeliveryPutParams, send: MessageSendParams
                                ) -> tuple[list[bool], list[SendResult]]:
        """Record new rows and send the batch in one statement when no row is known;
        otherwise write nothing and say which rows are new."""
        batch, rows = send.messages, put.rows
        q = UNLOGGED if await self._unlogged_queue(send.queue_id) else Q
        args = (*self._insert_args(send.queue_id, batch, send.now),
                [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                put.status, put.keep_ms, str(send.queue_id) if send.notify else None)
        executor = self._bound if self._bound is not None else self.pool
        row = None
        for attempt in range(_RACES):
            try:
                with translated():
                    row = await executor.fetchrow(q["delivery_put_send"], *args)
                break
            except StorageError as exc:
                # In the caller's transaction an error aborts it: nothing to run again.
                if not isinstance(exc.__cause__, asyncpg.UniqueViolationError) or \
                        self._bound is not None or attempt == _RACES - 1:
                    raise
        assert row is not None  # the statement always returns its one row
        known = set(row[0])
        if known:
            return [r[0] not in known for r in rows], []
        return [True] * len(rows), [SendResult(i) for i in batch.ids]

    async def delivery_finish_delete(self, updates: Sequence[DeliveryUpdate],
                                     now: int | None, queue_id: int,
                                     leases: Sequence[Lease]) -> set[Lease]:
        """Record outcomes, then delete the messages whose leases still hold; returns the
        deleted ones. Two statements, each its own transaction (the delete is the broker's
        one-trip function): a crash between the two only redelivers envelopes whose
        outcomes are recorded."""
        if updates:
            await self.delivery_finish_many(updates, now)
        return await self.message_delete_many(queue_id, leases) if leases else set()

    async def delivery_finish_begin(self, updates: Sequence[DeliveryUpdate],
                                    rows: Sequence[NewDelivery], keep_ms: int,
                                    now: int | None) -> list[str | None]:
        """Record one chunk's outcomes and mark the next chunk `sending` in one statement;
        returns the next chunk's previous statuses."""
        with translated():
            found = await self.pool.fetch(
                FINISH_BEGIN, [r[0] for r in rows], [r[1] for r in rows],
                [r[2] for r in rows], keep_ms, now, [u[0] for u in updates],
                [u[1] for u in updates], [u[2] for u in updates], [u[3] for u in updates],
                now)
        return [r[0] for r in found]
