"""PostgreSQL storage: asyncpg, batched statements, `FOR UPDATE SKIP LOCKED` claims.

Each operation is one statement (a transaction only where deduplication or deletes of
several tables need one). Wake-ups travel by LISTEN/NOTIFY on a dedicated connection,
with the broker's polling as the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from conveyor import fifo
from conveyor.digits import integer
from conveyor.errors import StorageUnavailable
from conveyor.fifo import format_sequence
from conveyor.models import (
    Message,
    PeekedMessage,
    QueueStats,
    SendResult,
)
from conveyor.reach import Reach
from conveyor.storage import claims, dedup, flow_steps, rows
from conveyor.storage.base import (
    Lease,
    MessageMoveParams,
    MessagePeekParams,
    MessageRetryParams,
    MessageSendParams,
    NewMessages,
    ReceiveParams,
    SignalCallback,
)
from conveyor.storage.postgres.bound import Executor
from conveyor.storage.postgres.postgres_base import (
    Connection,
    PostgresBase,
    translated,
    unavailable,
)
from conveyor.storage.postgres.postgres_cancels import PostgresCancels
from conveyor.storage.postgres.postgres_delivery_events import PostgresDeliveryEvents
from conveyor.storage.postgres.postgres_digests import PostgresDigests
from conveyor.storage.postgres.postgres_flows import PostgresFlows
from conveyor.storage.postgres.postgres_jobs import PostgresJobs
from conveyor.storage.postgres.postgres_keys import PostgresKeys
from conveyor.storage.postgres.postgres_ledger import PostgresLedger
from conveyor.storage.postgres.postgres_maintenance import (
    SLOT_BITS,
    SLOTS,
    Maintenance,
)
from conveyor.storage.postgres.postgres_notify_tx import PostgresNotifyTx
from conveyor.storage.postgres.postgres_queues import PostgresQueues
from conveyor.storage.postgres.postgres_recipients import PostgresRecipients
from conveyor.storage.postgres.postgres_templates import PostgresTemplates
from conveyor.storage.postgres.postgres_workers import PostgresWorkers
from conveyor.storage.sql import load_queries
from conveyor.tasks import stop_task

log = logging.getLogger("conveyor.storage.postgres")
Q = load_queries("conveyor.storage.postgres")
CHANNEL = "conveyor_wake"
CLAIM_BEGIN = ("BEGIN; SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off; "
               "SET LOCAL synchronous_commit = off")
# Without statistics on the message slots (migration 0008) a generic plan may join a batch of
# ids by hashing (or materialising) every row of the queue in every slot, dead ones included:
# measured 1,900 rows read to delete 100, growing with the backlog. With those priced out
# (and queries.sql's `queue_id + 0`), each id is a probe of each slot's primary key.
BY_ID_BEGIN = ("BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; "
               "SET LOCAL enable_mergejoin = off; SET LOCAL enable_material = off")


# A batch by ids (message_delete, message_change_visibility): `id = ANY` walks each slot's
# primary key once for the batch; the ids then meet the rows in a hash. A nested loop
# probing every slot per id (the plan these statements took with joins priced out) turned,
# with sixteen slots and no statistics on them, into walking every row for every id.
BY_IDS_BEGIN = ("BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_nestloop = off; "
                "SET LOCAL enable_mergejoin = off")
ALL_SLOTS = list(range(SLOTS))


def slots_of(leases: Sequence[Lease]) -> list[int]:
    """The slots the leases' tokens name (their low byte; see message_claim)."""
    mask = (1 << SLOT_BITS) - 1
    return sorted({lease.token & mask for lease in leases})


class PostgresStorage(PostgresJobs, PostgresFlows, PostgresNotifyTx, PostgresLedger,
                      PostgresKeys, PostgresWorkers, PostgresRecipients, PostgresTemplates,
                      PostgresDigests, PostgresDeliveryEvents, PostgresCancels, PostgresQueues,
                      PostgresBase):
    """Queues and messages in PostgreSQL."""

    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int | None = None,
                 statement_cache_size: int | None = None, maintenance: bool = True) -> None:
        super().__init__(url, pool_size=pool_size, statement_cache_size=statement_cache_size)
        # Rotation of the message slots and targeted VACUUM (maintenance.py), every second.
        self._maintain = maintenance
        self.maintenance: Maintenance | None = None
        # Durability is fixed when a queue is made and ids are never reused: safe to cache.
        self._unlogged: set[int] = set()
        self._logged: set[int] = set()
        self._last_stats: dict[int, QueueStats] = {}  # queue_stats while a slot is truncated
        self._listener: asyncio.Task[None] | None = None

    def _claiming(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A transaction for a FIFO claim (several statements under the queue's lock): the
        planner pinned to the index walk, and an asynchronous commit, since a lease lost in
        a server crash only means an earlier redelivery (at-least-once holds). No session
        state left behind. (A standard queue's claim is one function call instead.)
        """
        return self._pinned(CLAIM_BEGIN)

    def _by_ids(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A transaction for a batch looked up by ids and slots (acknowledge, extend): each
        slot's primary key walked once for the batch, met by a hash (BY_IDS_BEGIN)."""
        return self._pinned(BY_IDS_BEGIN)

    def _by_id(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A transaction for statements that find rows by id (retry, move, delete by id):
        index probes in each slot whatever the slots' statistics say (BY_ID_BEGIN)."""
        return self._pinned(BY_ID_BEGIN)

    @contextlib.asynccontextmanager
    async def _pinned(self, begin: str) -> AsyncIterator[Connection]:
        with translated():
            async with self.pool.acquire() as conn:
                await conn.execute(begin)
                try:
                    yield conn
                except BaseException:
                    if not conn.is_closed():
                        with contextlib.suppress(Exception):
                            await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")

    async def open(self) -> None:
        """Open the pool (migrating), then start the upkeep of the tables."""
        await super().open()
        if self._maintain and self.maintenance is None:
            self.maintenance = Maintenance(self.pool)
            self.maintenance.start()

    async def close(self) -> None:
        """Stop listening and the upkeep, then close the pool."""
        listener, self._listener = self._listener, None
        await stop_task(listener)
        maintenance, self.maintenance = self.maintenance, None
        if maintenance is not None:
            await maintenance.stop()
        await super().close()

    # messages -----------------------------------------------------------------------
    async def message_send_many(self, params: MessageSendParams) -> list[SendResult]:
        """Insert a batch with one statement; deduplicated or FIFO batches in one
        transaction (FIFO ones under the queue's advisory lock)."""
        queue_id, batch, now, fifo = params.queue_id, params.messages, params.now, params.fifo
        q = await self._q(queue_id)
        if not fifo and batch.claims is None and not any(batch.dedup_keys):
            if params.notify:  # the insert and its wake-up in one round trip
                await self._fetch(q["message_insert_notify"],
                                  *self._insert_args(queue_id, batch, now), str(queue_id))
            else:
                await self._insert(None, q, queue_id, batch, now)
            return [SendResult(i) for i in batch.ids]
        results = await self._send_in_transaction(q, params)
        if params.notify:
            await self.signal(queue_id)
        return results

    async def _send_in_transaction(self, q: dict[str, str], params: MessageSendParams
                                   ) -> list[SendResult]:
        """A deduplicated, claimed or FIFO batch: one transaction (FIFO ones under the
        queue's advisory lock)."""
        queue_id, batch, now, fifo = params.queue_id, params.messages, params.now, params.fifo
        async with self._tx() as conn:
            if fifo:
                await conn.execute(Q["fifo_lock"], queue_id)
            first = dedup.first_ids(batch)
            won: set[str] = set()
            earlier: dict[str, str] = {}
            if first:
                won = {r[0] for r in await conn.fetch(
                    Q["dedup_claim"], queue_id, now, list(first), list(first.values()))}
                lost = [k for k in first if k not in won]
                if lost:
                    earlier = {r[0]: str(r[1]) for r in await conn.fetch(
                        Q["dedup_get"], queue_id, lost)}
            results, keep = dedup.resolve(batch, first, won, earlier)
            kept = batch if len(keep) == len(batch) else batch.pick(keep)
            if kept.claims is not None:
                claimed, keep = await self._claim(conn, q, queue_id, kept, now)
                results = claims.merge(results, claimed)
                kept = kept if len(keep) == len(kept) else kept.pick(keep)
            if not kept.ids:
                inserted: list[SendResult] = []
            elif fifo:
                inserted = [SendResult(str(r[0]), sequence_number=format_sequence(r[1]))
                            for r in await conn.fetch(q["message_insert_fifo"],
                                                      *self._insert_args(queue_id, kept, now))]
            else:
                await self._insert(conn, q, queue_id, kept, now)
                inserted = [SendResult(i) for i in kept.ids]
        return dedup.fill(results, inserted)

    @staticmethod
    async def _claim(conn: Executor, q: dict[str, str], queue_id: int, batch: NewMessages,
                     now: int | None) -> tuple[list[SendResult | None], list[int]]:
        """The claims step of a send (see `storage.claims`), inside its transaction."""
        p = claims.plan(batch)
        won: set[str] = set()
        holders: dict[str, str] = {}
        replaced: dict[str, str] = {}
        if p.unique:
            keys, at = list(p.unique), list(p.unique.values())
            won = {r[0] for r in await conn.fetch(
                Q["claim_take"], now, keys, [batch.ids[i] for i in at],
                [claims.lifetime_ms(batch, i) for i in at])}
            lost = [k for k in keys if k not in won]
            if lost:
                holders = {r[0]: str(r[1]) for r in await conn.fetch(Q["claim_get"], lost)}
        if p.debounce:
            keys, at = list(p.debounce), list(p.debounce.values())
            replaced = {r[0]: str(r[1]) for r in await conn.fetch(
                q["claim_replace"], now, queue_id, keys, [batch.kinds[i] for i in at],
                [batch.bodies[i] for i in at], [batch.attributes[i] for i in at],
                [batch.priorities[i] for i in at], [batch.delays_ms[i] for i in at])}
            await conn.execute(
                Q["claim_put"], now, keys,
                [replaced.get(k, batch.ids[i]) for k, i in zip(keys, at)],
                [claims.lifetime_ms(batch, i) for i in at])
        return claims.resolve(batch, p, won, holders, replaced)

    @staticmethod
    def _insert_args(queue_id: int, batch: NewMessages, now: int | None) -> tuple[Any, ...]:
        return (queue_id, now, batch.ids, batch.priorities, batch.delays_ms, batch.kinds,
                batch.bodies, batch.attributes, batch.group_ids, batch.dedup_ids)

    async def _insert(self, conn: Executor | None, q: dict[str, str], queue_id: int,
                      batch: NewMessages, now: int | None) -> None:
        args = self._insert_args(queue_id, batch, now)
        if conn is None:
            await self._execute(q["message_insert"], *args)
        else:
            with translated():
                await conn.execute(q["message_insert"], *args)

    async def message_ready(self, queue_id: int, now: int | None) -> bool:
        """A visible message in a queue that is not paused."""
        row = await self._fetchrow((await self._q(queue_id))["message_ready"], queue_id, now)
        return bool(row[0])

    async def message_receive(self, params: ReceiveParams) -> list[Message]:
        """Claim with SKIP LOCKED; over-received rows go to the dead-letter queue."""
        if params.fifo:
            return await self._receive_fifo(params)
        args: tuple[Any, ...] = (params.queue_id, params.limit, params.visibility_ms,
                                 params.max_receive_count, params.dead_letter_queue_id,
                                 params.now)
        q = await self._q(params.queue_id)
        if params.skip_groups:
            sql, args = q["message_claim_skip"], (*args, list(params.skip_groups))
        else:
            sql = q["message_claim"]
        # One round trip: the statement carries its planner pins and asynchronous commit
        # (migration 0022), so no transaction is opened around it.
        with translated():
            claimed = await self.pool.fetch(sql, *args)
        if any(r[1] is None for r in claimed):  # rare: flow nodes, tracked jobs past the limit
            params.released.extend(await self._flow_dead_letter(
                q, params, [r[0] for r in claimed if r[1] is None]))
            claimed = [r for r in claimed if r[1] is not None]
        claimed.sort(key=lambda r: (-r[9], r[5], r[0]))
        name = params.queue_name
        return [rows.message_from_claim(name, str(r[0]), r) for r in claimed]

    async def _receive_fifo(self, params: ReceiveParams) -> list[Message]:
        """Choose rows by the FIFO rules under the queue's advisory lock, then lease them."""
        q = await self._q(params.queue_id)
        async with self._claiming() as conn:
            await conn.execute(Q["fifo_lock"], params.queue_id)
            gates = {r[0]: r[1] for r in await conn.fetch(
                q["fifo_gates"], params.queue_id, params.now)}
            paging = fifo.Paging(gates, params.limit, params.max_receive_count)
            while paging.after is not None:
                paging.add(await conn.fetch(q["fifo_visible"], params.queue_id, paging.after,
                                            params.now, fifo.PAGE))
            if paging.dead:
                await conn.execute(q["fifo_dead_letter"], paging.dead,
                                   params.dead_letter_queue_id, params.now)
                await self._jobs_dead(conn, paging.dead, flow_steps.dead_lettered(
                    params.max_receive_count), params.max_receive_count, params.now)
            claimed = await conn.fetch(q["fifo_claim"], paging.deliver, params.visibility_ms,
                                       params.now) if paging.deliver else []
        order = {str(i): k for k, i in enumerate(paging.deliver)}  # group by group
        claimed.sort(key=lambda r: order[str(r[0])])
        return [rows.message_from_claim(params.queue_name, str(r[0]), r) for r in claimed]

    async def message_delete_many(self, queue_id: int, leases: Sequence[Lease]) -> set[Lease]:
        """Delete rows whose token still matches: in the slots the tokens name, then in
        every slot for the leases that missed there (rows moved since, older handles)."""
        sql = (await self._q(queue_id))["message_delete"]
        # One round trip when every handle names its row's slot (the statement carries its
        # planner pins, migration 0022); a second only for the misses. No transaction: each
        # statement is atomic, and a row the first missed is looked for again anyway.
        with translated():
            found = {leases[r[0] - 1] for r in await self.pool.fetch(
                sql, queue_id, [lease.message_id for lease in leases],
                [lease.token for lease in leases], slots_of(leases))}
            missed = [lease for lease in leases if lease not in found]
            if missed:
                found |= {missed[r[0] - 1] for r in await self.pool.fetch(
                    sql, queue_id, [lease.message_id for lease in missed],
                    [lease.token for lease in missed], ALL_SLOTS)}
        return found

    async def message_delete_leased(self, queue_id: int, message_id: str,
                                    now: int | None, token: int | None = None) -> bool:
        """Delete a leased row by id."""
        sql = (await self._q(queue_id))["message_delete_leased"]
        return await self._execute(sql, queue_id, message_id, now, token) > 0

    async def message_change_visibility_many(self, queue_id: int,
                                             changes: Sequence[tuple[Lease, int]],
                                             now: int | None) -> set[Lease]:
        """Move lease expiries of rows whose token still matches (slots as in
        `message_delete_many`)."""
        sql = (await self._q(queue_id))["message_change_visibility"]

        async def change(conn: Connection, part: Sequence[tuple[Lease, int]],
                         slots: list[int]) -> set[Lease]:
            return {Lease(str(r[0]), r[1]) for r in await conn.fetch(
                sql, queue_id, [lease.message_id for lease, _ in part],
                [lease.token for lease, _ in part], [ms for _, ms in part], now, slots)}

        async with self._by_ids() as conn:
            found = await change(conn, changes, slots_of([lease for lease, _ in changes]))
            missed = [(lease, ms) for lease, ms in changes if lease not in found]
            if missed:
                found |= await change(conn, missed, ALL_SLOTS)
        return found

    async def message_retry(self, params: MessageRetryParams) -> bool:
        """End a lease; visible again after the delay."""
        sql = (await self._q(params.queue_id))["message_retry"]
        async with self._by_id() as conn:
            status: str = await conn.execute(sql, params.queue_id, params.lease.message_id,
                                             params.lease.token, params.delay_ms, params.error,
                                             params.now, params.dead_letter_queue_id,
                                             int(params.refund))
        return not status.endswith(" 0")

    async def message_peek(self, params: MessagePeekParams) -> list[PeekedMessage]:
        """Messages by id without leasing them."""
        found = await self._fetch((await self._q(params.queue_id))["message_peek"],
                                  params.queue_id,
                                  params.after or "00000000-0000-0000-0000-000000000000",
                                  params.limit)
        return [rows.peeked_from_row(str(r[0]), r, {r[11]: r[12]} if r[11] else {})
                for r in found]

    async def message_move(self, params: MessageMoveParams) -> int:
        """Move a batch out of a dead-letter queue."""
        sql = (await self._q(params.from_queue_id))["message_move"]
        return await self._execute(sql, params.from_queue_id, params.to_queue_id,
                                   params.limit, params.now)

    async def message_move_ids(self, from_queue_id: int, to_queue_id: int,
                               message_ids: Sequence[str], now: int | None) -> list[str]:
        """Move rows by id out of a dead-letter queue."""
        sql = (await self._q(from_queue_id))["message_move_ids"]
        async with self._by_id() as conn:
            found = await conn.fetch(sql, from_queue_id, to_queue_id, list(message_ids), now)
        return [str(r[0]) for r in found]

    async def message_delete_ids(self, queue_id: int, message_ids: Sequence[str],
                                 now: int | None) -> list[str]:
        """Delete rows by id, unless leased."""
        sql = (await self._q(queue_id))["message_delete_ids"]
        async with self._by_id() as conn:
            found = await conn.fetch(sql, queue_id, list(message_ids), now)
        return [str(r[0]) for r in found]

    async def message_delete_queued(self, queue_id: int, message_ids: Sequence[str],
                                    now: int | None) -> list[str]:
        """Delete rows by id unless in flight (a lapsed lease is not)."""
        sql = (await self._q(queue_id))["message_delete_queued"]
        async with self._by_id() as conn:
            found = await conn.fetch(sql, queue_id, list(message_ids), now)
        return [str(r[0]) for r in found]

    async def message_count_movable(self, from_queue_id: int, now: int | None,
                                    to_queue_id: int | None = None) -> int:
        """How many rows `message_move` would move (back to their sources, or all)."""
        found = await self._fetchrow((await self._q(from_queue_id))["message_count_movable"],
                                     from_queue_id, now, to_queue_id)
        return int(found[0]) if found else 0

    async def message_expire(self, queue_id: int, before_id: str, limit: int) -> int:
        """Delete rows older than the retention bound."""
        return await self._execute((await self._q(queue_id))["message_expire"], queue_id,
                                   before_id, limit)

    async def dedup_expire(self, now: int | None, limit: int) -> int:
        """Forget deduplication ids past the window."""
        return await self._execute(Q["dedup_expire"], now, limit)

    async def claim_release(self, key: str, message_id: str) -> bool:
        """Drop the key's claim if this message holds it."""
        return await self._execute(Q["claim_release"], key, message_id) > 0

    async def claim_expire(self, now: int | None, limit: int) -> int:
        """Forget claims past their expiry."""
        return await self._execute(Q["claim_expire"], now, limit)

    # wake-ups -----------------------------------------------------------------------
    async def signal(self, queue_id: int) -> None:
        """NOTIFY the other nodes (the broker throttles how often)."""
        await self._fetch(Q["signal_bump"], str(queue_id))

    async def listen(self, callback: SignalCallback) -> None:
        """LISTEN on a dedicated connection, reconnecting when it drops."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(callback))

    async def _listen(self, callback: SignalCallback) -> None:
        def on_notify(_conn: object, _pid: int, _channel: str, payload: object) -> None:
            text = str(payload)
            callback(integer(text))

        # A database down for a minute: one WARNING and one INFO line, not one a second.
        reach = Reach("the database")
        while True:
            conn: asyncpg.Connection | None = None
            asked = reach.now()
            try:
                conn = await asyncpg.connect(self.dsn)
                lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                conn.add_termination_listener(functools.partial(_resolve, lost))
                await conn.add_listener(CHANNEL, on_notify)
                reach.ok(asked)
                callback(None)  # anything sent while we were away: look again
                await lost
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if unavailable(exc):
                    outage = StorageUnavailable(f"PostgreSQL is unavailable: {exc}")
                    outage.__cause__ = exc
                    reach.error(outage, "listening for the other processes' wake-ups failed")
                else:
                    log.warning("postgres LISTEN connection failed: %s", exc)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(1.0)


def _resolve(future: asyncio.Future[None], _conn: object) -> None:
    if not future.done():
        future.set_result(None)
