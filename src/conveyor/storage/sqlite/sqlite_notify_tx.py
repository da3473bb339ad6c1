"""SQLite half of the notification path's combined writes: a mixin of `SqliteStorage`.

Each operation is the statements of two others (ledger.sql's and queries.sql's, by name)
in one `BEGIN IMMEDIATE` transaction: one turn of the file's single writer instead of two,
which every process sharing the file waits for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from conveyor.ledger import DeliveryUpdate, NewDelivery
from conveyor.models import SendResult
from conveyor.storage.base import DeliveryPutParams, Lease, MessageSendParams
from conveyor.storage.sqlite.sqlite_base import SqliteBase
from conveyor.storage.sqlite.sqlite_ledger import begin_rows, finish_rows, put_rows, statuses
from conveyor.storage.sqlite.sqlite_wake import WakeSockets


class _Known(Exception):
    """Some row of a put was recorded before: roll the transaction back."""


class SqliteNotifyTx(SqliteBase):
    """A notifier's enqueue and a delivery lane's last write, one transaction each."""

    _wake: WakeSockets

    def _send_in(self, db: sqlite3.Connection, params: MessageSendParams, at: int
                 ) -> list[SendResult]:
        raise NotImplementedError  # SqliteStorage's: a send inside a transaction

    def _delete_in(self, db: sqlite3.Connection, queue_id: int, leases: Sequence[Lease]
                   ) -> set[Lease]:
        raise NotImplementedError  # SqliteStorage's: a delete inside a transaction

    async def delivery_put_send(self, put: DeliveryPutParams, send: MessageSendParams
                                ) -> tuple[list[bool], list[SendResult]]:
        """Record new rows and send the batch in one transaction when no row is known;
        otherwise write nothing and say which rows are new."""
        at = self._now(put.now)
        rows = put.rows

        def run(db: sqlite3.Connection) -> tuple[list[bool], list[SendResult]]:
            try:
                with self._write(db):
                    # Insert first, look only when some row was there before (rare): no
                    # read of a thousand random index pages ahead of every enqueue.
                    if put_rows(db, rows, put.status, at, put.keep_ms) != len(rows):
                        raise _Known
                    results = self._send_in(db, send, self._now(send.now))
            except _Known:  # rolled back: nothing written; the caller sends the new again
                ids = orjson.dumps([r[0] for r in rows]).decode()
                known = set(statuses(db, ids))
                return [r[0] not in known for r in rows], []
            return [True] * len(rows), results
        new, results = await self._run(run)
        if results and send.notify:
            self._wake.send(send.queue_id)  # committed: the datagrams may go
        return new, results

    async def delivery_finish_delete(self, updates: Sequence[DeliveryUpdate],
                                     now: int | None, queue_id: int,
                                     leases: Sequence[Lease]) -> set[Lease]:
        """Record outcomes and delete the messages whose leases still hold, in one
        transaction; returns the deleted ones."""
        at = self._now(now)

        def run(db: sqlite3.Connection) -> set[Lease]:
            with self._write(db):
                finish_rows(db, updates, at)
                return self._delete_in(db, queue_id, leases)
        return await self._run(run)

    async def delivery_finish_begin(self, updates: Sequence[DeliveryUpdate],
                                    rows: Sequence[NewDelivery], keep_ms: int,
                                    now: int | None) -> list[str | None]:
        """Record one chunk's outcomes and mark the next chunk `sending` in one
        transaction; returns the next chunk's previous statuses."""
        at = self._now(now)

        def run(db: sqlite3.Connection) -> list[str | None]:
            with self._write(db):
                finish_rows(db, updates, at)
                before = begin_rows(db, rows, at, keep_ms)
            return [before.get(r[0]) for r in rows]
        return await self._run(run)
