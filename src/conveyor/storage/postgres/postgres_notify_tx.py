"""PostgreSQL half of the notification path's combined writes: a mixin of
`PostgresStorage`. The enqueue is one statement (notify_tx.sql); the lane's last write is
ledger.sql's and queries.sql's statements one after the other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from conveyor.errors import StorageError
from conveyor.ledger import DeliveryUpdate
from conveyor.models import SendResult
from conveyor.storage.base import DeliveryPutParams, Lease, MessageSendParams
from conveyor.storage.postgres.postgres_base import translated
from conveyor.storage.postgres.postgres_ledger import PostgresLedger
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "notify_tx.sql")
UNLOGGED = {name: sql.replace("conveyor_messages", "conveyor_messages_unlogged")
            for name, sql in Q.items()}
# A concurrent enqueue of the same delivery ids fails the statement (a unique violation);
# the next run sees them recorded. More than a few in a row is not a race but a fault.
_RACES = 5


class PostgresNotifyTx(PostgresLedger):
    """A notifier's enqueue in one round trip; a delivery lane's finish and ack."""

    async def _unlogged_queue(self, queue_id: int) -> bool:
        raise NotImplementedError  # PostgresStorage's: which messages table

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
        deleted ones. Two statements, not one transaction: the delete's function commits
        asynchronously (migration 0022), which the ledger's outcomes must not, and a
        crash between the two only redelivers envelopes whose outcomes are recorded."""
        if updates:
            await self.delivery_finish_many(updates, now)
        return await self.message_delete_many(queue_id, leases) if leases else set()
