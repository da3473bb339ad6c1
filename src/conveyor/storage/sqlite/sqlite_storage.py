"""SQLite storage: one file in WAL mode, shared by the processes of one machine.

One connection per process, used from one thread; every operation is one transaction
(`BEGIN IMMEDIATE` when it writes) run in that thread, so the event loop never blocks on
the file and each batch costs one hop. Other processes' sends wake this one over a Unix
datagram socket (sqlite_wake.py), with polling `PRAGMA data_version` and reading the small
signals table as the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson

from conveyor import fifo
from conveyor.errors import StorageError, StorageUnavailable
from conveyor.fifo import format_sequence
from conveyor.models import (
    Message,
    PeekedMessage,
    SendResult,
)
from conveyor.storage import claims, dedup, flow_steps, rows
from conveyor.storage.base import (
    DEDUP_WINDOW_MS,
    Lease,
    MessageMoveParams,
    MessagePeekParams,
    MessageRetryParams,
    MessageSendParams,
    NewMessages,
    ReceiveParams,
    SignalCallback,
)
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase
from conveyor.storage.sqlite.sqlite_cancels import SqliteCancels
from conveyor.storage.sqlite.sqlite_delivery_events import SqliteDeliveryEvents
from conveyor.storage.sqlite.sqlite_digests import SqliteDigests
from conveyor.storage.sqlite.sqlite_flows import SqliteFlows, fail_jobs_in
from conveyor.storage.sqlite.sqlite_jobs import SqliteJobs, jobs_dead_in
from conveyor.storage.sqlite.sqlite_keys import SqliteKeys
from conveyor.storage.sqlite.sqlite_ledger import SqliteLedger
from conveyor.storage.sqlite.sqlite_maintenance import (
    WalHold,
)
from conveyor.storage.sqlite.sqlite_notify_tx import SqliteNotifyTx
from conveyor.storage.sqlite.sqlite_queues import SqliteQueues
from conveyor.storage.sqlite.sqlite_recipients import SqliteRecipients
from conveyor.storage.sqlite.sqlite_templates import SqliteTemplates
from conveyor.storage.sqlite.sqlite_wake import WakeSockets
from conveyor.storage.sqlite.sqlite_workers import SqliteWorkers
from conveyor.tasks import stop_task

log = logging.getLogger("conveyor.storage.sqlite")
Q = load_queries("conveyor.storage.sqlite")


def _blob(message_id: str) -> bytes:
    return uuid.UUID(message_id).bytes


def _uid(blob: bytes) -> str:
    return str(uuid.UUID(bytes=blob))


def _claim(db: sqlite3.Connection, queue_id: int, batch: NewMessages, at: int
           ) -> tuple[list[SendResult | None], list[int]]:
    """The claims step of a send (see `storage.claims`), inside its transaction."""
    p = claims.plan(batch)
    won: set[str] = set()
    holders: dict[str, str] = {}
    replaced: dict[str, str] = {}
    for key, i in p.unique.items():
        if db.execute(Q["claim_take"], {
                "key": key, "message_id": _blob(batch.ids[i]), "now": at,
                "expires_at": at + claims.lifetime_ms(batch, i)}).rowcount:
            won.add(key)
        else:
            holders[key] = _uid(db.execute(Q["claim_get"], {"key": key}).fetchone()[0])
    for key, i in p.debounce.items():
        row = db.execute(Q["claim_replace"], {
            "key": key, "queue_id": queue_id, "now": at, "kind": batch.kinds[i],
            "body": batch.bodies[i], "attributes": batch.attributes[i],
            "priority": batch.priorities[i],
            "visible_at": at + batch.delays_ms[i]}).fetchone()
        holder = _uid(row[0]) if row else batch.ids[i]
        if row:
            replaced[key] = holder
        db.execute(Q["claim_put"], {"key": key, "message_id": _blob(holder),
                                    "expires_at": at + claims.lifetime_ms(batch, i)})
    return claims.resolve(batch, p, won, holders, replaced)


class SqliteStorage(SqliteNotifyTx, SqliteJobs, SqliteFlows, SqliteLedger, SqliteKeys,
                    SqliteWorkers, SqliteRecipients, SqliteTemplates, SqliteDigests,
                    SqliteDeliveryEvents, SqliteCancels, SqliteQueues, SqliteBase):
    """Queues and messages in one SQLite file."""

    dialect = "sqlite"

    def __init__(self, path: str | Path, *, synchronous: str = "normal",
                 busy_timeout_ms: int = 30_000, poll_interval: float = 0.005,
                 fallback_poll_interval: float = 0.25) -> None:
        super().__init__(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        # Other processes' sends are pushed over wake sockets (sqlite_wake.py); the poll
        # of the file is then only the fallback (for a sender that cannot reach this
        # process's socket, such as an older node), at `fallback_poll_interval`. Where no
        # socket can be had, the poll is the only way, at `poll_interval`. Each poll is a
        # hop to the storage's thread: measured idle, 28 ms of CPU a second at 5 ms, 7 at
        # 50 ms, 0.6 with no poll (one idle long poll, on a loaded 2-core machine).
        self._poll_interval = poll_interval
        self._fallback_poll_interval = fallback_poll_interval
        self._poller: asyncio.Task[None] | None = None
        self._wake = WakeSockets(self.path)
        self._wal_hold = WalHold()

    async def close(self) -> None:
        """Stop listening and polling, then close the connection."""
        self._wake.close()
        poller, self._poller = self._poller, None
        await stop_task(poller)
        await super().close()

    # messages -----------------------------------------------------------------------
    async def message_send_many(self, params: MessageSendParams) -> list[SendResult]:
        """Insert a batch in one transaction, resolving deduplication ids first."""
        at = self._now(params.now)

        def run(db: sqlite3.Connection) -> list[SendResult]:
            with self._write(db):
                return self._send_in(db, params, at)
        sent = await self._run(run)
        if params.notify:
            self._wake.send(params.queue_id)  # committed: the datagrams may go
        return sent

    def _send_in(self, db: sqlite3.Connection, params: MessageSendParams, at: int
                 ) -> list[SendResult]:
        """A send's statements, inside the caller's write transaction (also the notifier's
        enqueue, `sqlite_notify_tx`)."""
        queue_id, batch = params.queue_id, params.messages
        first = dedup.first_ids(batch)
        won: set[str] = set()
        earlier: dict[str, str] = {}
        for key, message_id in first.items():
            args = {"queue_id": queue_id, "dedup_id": key}
            if db.execute(Q["dedup_claim"], {
                    **args, "message_id": _blob(message_id), "now": at,
                    "expires_at": at + DEDUP_WINDOW_MS}).rowcount:
                won.add(key)
            else:
                earlier[key] = _uid(db.execute(Q["dedup_get"], args).fetchone()[0])
        results, keep = dedup.resolve(batch, first, won, earlier)
        kept = batch if len(keep) == len(batch) else batch.pick(keep)
        if kept.claims is not None:
            claimed, keep = _claim(db, queue_id, kept, at)
            results = claims.merge(results, claimed)
            kept = kept if len(keep) == len(kept) else kept.pick(keep)
        sequences: list[int | None] = [None] * len(kept)
        if params.fifo and kept.ids:
            last = db.execute(Q["counter_take"], {
                "name": "fifo_sequence", "n": len(kept)}).fetchone()[0]
            sequences = list(range(last - len(kept) + 1, last + 1))
        db.executemany(Q["message_insert"], zip(
            map(_blob, kept.ids), repeat(queue_id), kept.priorities,
            [at + d for d in kept.delays_ms], repeat(at), kept.kinds, kept.bodies,
            kept.attributes, kept.group_ids, kept.dedup_ids, sequences))
        if params.notify:  # for the other processes' pollers, in the same commit
            db.execute(Q["signal_bump"], {"queue_id": queue_id})
        return dedup.fill(results, [
            SendResult(i, sequence_number=format_sequence(n))
            for i, n in zip(kept.ids, sequences)])

    async def message_ready(self, queue_id: int, now: int | None) -> bool:
        """A visible message in a queue that is not paused."""
        params = {"queue_id": queue_id, "now": self._now(now)}
        return await self._run(lambda db: bool(db.execute(Q["message_ready"], params)
                                               .fetchone()[0]))

    async def message_receive(self, params: ReceiveParams) -> list[Message]:
        """Dead-letter over-received rows at the head, then lease the next ones."""
        at = self._now(params.now)
        args = {"queue_id": params.queue_id, "now": at, "limit": params.limit,
                "visibility_ms": params.visibility_ms}

        def run(db: sqlite3.Connection) -> list[Message]:
            if params.fifo:
                with self._write(db):
                    claimed = self._receive_fifo(db, params, at)  # group by group
                return [rows.message_from_claim(params.queue_name, _uid(r[0]), r)
                        for r in claimed]
            with self._write(db):
                if params.dead_letter_queue_id is not None:
                    # Again until the head holds none: once some went, the claim's head
                    # reaches rows the check did not see, which may be over-received too.
                    dead = {**args, "dlq_id": params.dead_letter_queue_id,
                            "max_receive_count": params.max_receive_count}
                    moved: list[str] = []
                    while found := db.execute(Q["message_dead_letter"], dead).fetchall():
                        moved += [_uid(r[0]) for r in found]
                    if moved:  # rare: flow nodes and tracked jobs among them must not
                        # wait for a worker that died in their last attempt
                        error = flow_steps.dead_lettered(params.max_receive_count)
                        jobs_dead_in(db, moved, error, params.max_receive_count, at)
                        params.released.extend(fail_jobs_in(db, moved, error, at))
                if params.skip_groups:
                    claimed = db.execute(Q["message_claim_skip"], {
                        **args, "skip": orjson.dumps(params.skip_groups).decode()}).fetchall()
                else:
                    claimed = db.execute(Q["message_claim"], args).fetchall()
            claimed.sort(key=lambda r: (-r[9], r[14]))
            return [rows.message_from_claim(params.queue_name, _uid(r[0]), r) for r in claimed]
        return await self._run(run)

    @staticmethod
    def _receive_fifo(db: sqlite3.Connection, params: ReceiveParams, at: int) -> list[Any]:
        gates = dict(db.execute(Q["fifo_gates"], {"queue_id": params.queue_id, "now": at}))
        paging = fifo.Paging(gates, params.limit, params.max_receive_count)
        while paging.after is not None:
            paging.add(db.execute(Q["fifo_visible"], {
                "queue_id": params.queue_id, "after": paging.after, "now": at,
                "limit": fifo.PAGE}).fetchall())
        for blob in paging.dead:
            db.execute(Q["fifo_dead_letter"], {
                "id": blob, "dlq_id": params.dead_letter_queue_id, "now": at})
        if paging.dead:
            jobs_dead_in(db, [_uid(b) for b in paging.dead], flow_steps.dead_lettered(
                params.max_receive_count), params.max_receive_count, at)
        args = {"now": at, "visibility_ms": params.visibility_ms}
        return [db.execute(Q["fifo_claim"], {**args, "id": blob}).fetchone()
                for blob in paging.deliver]

    async def message_delete_many(self, queue_id: int, leases: Sequence[Lease]) -> set[Lease]:
        """Delete rows whose token still matches."""
        def run(db: sqlite3.Connection) -> set[Lease]:
            with self._write(db):
                return self._delete_in(db, queue_id, leases)
        return await self._run(run)

    def _delete_in(self, db: sqlite3.Connection, queue_id: int, leases: Sequence[Lease]
                   ) -> set[Lease]:
        """A delete's statements, inside the caller's write transaction."""
        deleted: set[Lease] = set()
        for lease in leases:
            cursor = db.execute(Q["message_delete"],
                                (_blob(lease.message_id), queue_id, lease.token))
            if cursor.rowcount:
                deleted.add(lease)
        return deleted

    async def message_delete_leased(self, queue_id: int, message_id: str,
                                    now: int | None, token: int | None = None) -> bool:
        """Delete a leased row by id."""
        params = (_blob(message_id), queue_id, self._now(now), token, token)

        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                return db.execute(Q["message_delete_leased"], params).rowcount > 0
        return await self._run(run)

    async def message_change_visibility_many(self, queue_id: int,
                                             changes: Sequence[tuple[Lease, int]],
                                             now: int | None) -> set[Lease]:
        """Move lease expiries of rows whose token still matches."""
        at = self._now(now)

        def run(db: sqlite3.Connection) -> set[Lease]:
            changed: set[Lease] = set()
            with self._write(db):
                for lease, ms in changes:
                    cursor = db.execute(Q["message_change_visibility"], (
                        at, ms, ms, _blob(lease.message_id), queue_id, lease.token))
                    if cursor.rowcount:
                        changed.add(lease)
            return changed
        return await self._run(run)

    async def message_retry(self, params: MessageRetryParams) -> bool:
        """End a lease; visible again after the delay."""
        args = {"id": _blob(params.lease.message_id), "queue_id": params.queue_id,
                "token": params.lease.token, "delay_ms": params.delay_ms,
                "error": params.error, "now": self._now(params.now),
                "dlq_id": params.dead_letter_queue_id, "refund": int(params.refund)}

        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                return db.execute(Q["message_retry"], args).rowcount > 0
        return await self._run(run)

    async def message_peek(self, params: MessagePeekParams) -> list[PeekedMessage]:
        """Messages by id without leasing them."""
        args = {"queue_id": params.queue_id, "limit": params.limit,
                "after": _blob(params.after) if params.after else b""}

        def run(db: sqlite3.Connection) -> list[PeekedMessage]:
            found = db.execute(Q["message_peek"], args).fetchall()
            names = {r[0]: r[2] for r in db.execute(
                "SELECT id, region, name FROM conveyor_queues")} if any(
                r[11] is not None for r in found) else {}
            return [rows.peeked_from_row(_uid(r[0]), r, names) for r in found]
        return await self._run(run)

    async def message_move(self, params: MessageMoveParams) -> int:
        """Move a batch out of a dead-letter queue."""
        args = {"source_id": params.from_queue_id, "dest_id": params.to_queue_id,
                "limit": params.limit, "now": self._now(params.now)}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["message_move"], args).rowcount
        return await self._run(run)

    async def message_move_ids(self, from_queue_id: int, to_queue_id: int,
                               message_ids: Sequence[str], now: int | None) -> list[str]:
        """Move rows by id out of a dead-letter queue."""
        args = {"source_id": from_queue_id, "dest_id": to_queue_id, "now": self._now(now)}
        ids = list(message_ids)

        def run(db: sqlite3.Connection) -> list[str]:
            with self._write(db):
                return [i for i in ids if db.execute(
                    Q["message_move_ids"], {**args, "id": _blob(i)}).rowcount > 0]
        return await self._run(run)

    async def message_delete_ids(self, queue_id: int, message_ids: Sequence[str],
                                 now: int | None) -> list[str]:
        """Delete rows by id, unless leased."""
        return await self._delete_each("message_delete_ids", queue_id, message_ids, now)

    async def message_delete_queued(self, queue_id: int, message_ids: Sequence[str],
                                    now: int | None) -> list[str]:
        """Delete rows by id unless in flight (a lapsed lease is not)."""
        return await self._delete_each("message_delete_queued", queue_id, message_ids, now)

    async def _delete_each(self, query: str, queue_id: int, message_ids: Sequence[str],
                           now: int | None) -> list[str]:
        """Run a delete-one-by-id query per id, in one transaction; the ids it deleted."""
        args = {"queue_id": queue_id, "now": self._now(now)}
        ids = list(message_ids)

        def run(db: sqlite3.Connection) -> list[str]:
            with self._write(db):
                return [i for i in ids if db.execute(
                    Q[query], {**args, "id": _blob(i)}).rowcount > 0]
        return await self._run(run)

    async def message_count_movable(self, from_queue_id: int, now: int | None,
                                    to_queue_id: int | None = None) -> int:
        """How many rows `message_move` would move."""
        params = {"source_id": from_queue_id, "dest_id": to_queue_id, "now": self._now(now)}
        return await self._run(
            lambda db: int(db.execute(Q["message_count_movable"], params).fetchone()[0]))

    async def message_expire(self, queue_id: int, before_id: str, limit: int) -> int:
        """Delete rows older than the retention bound."""
        params = {"queue_id": queue_id, "before_id": _blob(before_id), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["message_expire"], params).rowcount
        return await self._run(run)

    async def dedup_expire(self, now: int | None, limit: int) -> int:
        """Forget deduplication ids past the window."""
        params = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["dedup_expire"], params).rowcount
        return await self._run(run)

    async def claim_release(self, key: str, message_id: str) -> bool:
        """Drop the key's claim if this message holds it."""
        params = {"key": key, "message_id": _blob(message_id)}

        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                return db.execute(Q["claim_release"], params).rowcount > 0
        return await self._run(run)

    async def claim_expire(self, now: int | None, limit: int) -> int:
        """Forget claims past their expiry."""
        params = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["claim_expire"], params).rowcount
        return await self._run(run)

    # wake-ups -----------------------------------------------------------------------
    async def signal(self, queue_id: int) -> None:
        """Wake the other processes' receives on a queue: a datagram to each one's wake
        socket now, and a bump of the queue's signal row for their pollers."""
        self._wake.send(queue_id)

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.execute(Q["signal_bump"], {"queue_id": queue_id})
        await self._run(run)

    async def listen(self, callback: SignalCallback) -> None:
        """Listen on this process's wake socket, and poll `PRAGMA data_version` (on a
        change, wake the queues whose signal moved): often without a socket, seldom with."""
        if self._poller is None:
            pushed = self._wake.listen(callback)
            interval = self._fallback_poll_interval if pushed else self._poll_interval
            self._poller = asyncio.create_task(self._poll(callback, interval))

    async def _poll(self, callback: SignalCallback, interval: float) -> None:
        def read(db: sqlite3.Connection) -> tuple[int, dict[int, int]]:
            version = db.execute("PRAGMA data_version").fetchone()[0]
            return version, dict(db.execute(Q["signal_all"]).fetchall())

        def version(db: sqlite3.Connection) -> int:
            return int(db.execute("PRAGMA data_version").fetchone()[0])

        last_version, seen = await self._run(read)
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                # data_version moves only for other connections' commits: ours are
                # announced in-process already.
                if await self._run(version) == last_version:
                    failing = False
                    continue
                last_version, signals = await self._run(read)
            except StorageUnavailable as exc:
                # Once per outage (a file deleted under the server refuses every read
                # until a restart), not a traceback four times a second.
                if not failing:
                    log.warning("sqlite wake-up poll paused: %s", exc.message)
                failing = True
                continue
            except StorageError:
                log.warning("sqlite wake-up poll failed", exc_info=True)
                continue
            failing = False
            for queue_id, seq in signals.items():
                if seen.get(queue_id) != seq:
                    callback(queue_id)
            seen = signals
