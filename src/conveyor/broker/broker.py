"""The broker: every queue and message operation, on top of any Storage.

All rules live here (validation, defaults, dead-letter policy, long polling); storage
dialects only run thin SQL. Protocol edges (`http`, `sqs`, the worker's client) call these
methods and map `conveyor.errors` to their own codes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conveyor.broker import batches, retention
from conveyor.broker import validation as v
from conveyor.broker.delivery_ledger import Ledger
from conveyor.broker.delivery_view import DeliveryView
from conveyor.broker.digests import Digests
from conveyor.broker.flows import Flows
from conveyor.broker.job_system import Jobs, Limits
from conveyor.broker.queue_rules import check_dead_letter, check_supported
from conveyor.broker.quotas import Quotas
from conveyor.broker.recipients import Recipients
from conveyor.broker.redrive import Redrive
from conveyor.broker.templates import StoredTemplates
from conveyor.broker.wakeup import Throttle, Wakeups, Watchers
from conveyor.broker.workers import Workers
from conveyor.clock import Clock, system_clock
from conveyor.config import MAX_IN_FLIGHT, MAX_LONG_POLLS
from conveyor.errors import (
    InvalidInput,
    QueueAlreadyExists,
    QueueNotFound,
)
from conveyor.ids import decode_receipt_handle
from conveyor.models import (
    EntryResult,
    Message,
    MoveTask,
    PeekedMessage,
    Queue,
    QueueStats,
    SendEntry,
    SendResult,
    SnapshotHold,
    TableHealth,
    VisibilityEntry,
    dumps_json,
)
from conveyor.storage.base import (
    NO_RECEIVE_LIMIT,
    Lease,
    MessagePeekParams,
    MessageRetryParams,
    QueueListParams,
    QueueRow,
    QueueUpdateParams,
    ReceiveParams,
    Storage,
)
from conveyor.tasks import stop_task

log = logging.getLogger("conveyor.broker")

DEFAULT_REGION = "us-east-1"

BrokerObserver = Callable[[str, Queue, int], None]
"""Told `(event, queue, count)` after an operation took effect: `sent` (new messages,
not duplicates), `received`, `deleted`. Metrics hang here; an observer must be quick and
must not raise."""


class Broker:
    """Queues and messages with SQS semantics, on SQLite or PostgreSQL.

    `clock` is for tests; without one, time comes from the database.
    """

    def __init__(self, storage: Storage, *, clock: Clock | None = None,
                 region: str = DEFAULT_REGION, sweep_interval: float | None = 10.0,
                 poll_interval: float = 1.0, queue_cache_seconds: float = 1.0,
                 stats_cache_seconds: float = 2.0,
                 max_in_flight: int | None = MAX_IN_FLIGHT, max_depth: int | None = None,
                 max_long_polls: int | None = MAX_LONG_POLLS) -> None:
        self.storage = storage
        self.region = v.check_region(region)
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._queue_cache_seconds = queue_cache_seconds
        self._stats_cache_seconds = stats_cache_seconds
        self._queues: dict[tuple[str, str], tuple[float, Queue]] = {}
        self._stats: dict[str, tuple[float, dict[int, QueueStats]]] = {}
        self._wakeups = Wakeups()
        self._signal = Throttle(storage.signal)
        self._background: list[asyncio.Task[None]] = []
        self.redrive = Redrive(self)
        self.limits, self.jobs = Limits(self), Jobs(self)
        self.flows = Flows(self)
        self.workers = Workers(self)
        self.ledger = Ledger(self)
        self.recipients = Recipients(self)
        self.deliveries = DeliveryView(self)
        self.templates = StoredTemplates(self)
        self.digests = Digests(self)
        self.observers: list[BrokerObserver] = []
        self.queue_changes = 0
        """Bumped whenever this broker creates, changes or deletes a queue (so that lists
        of queues kept elsewhere, such as the dashboard's, know to read them again)."""
        self.quotas = Quotas(storage, max_in_flight=max_in_flight, max_depth=max_depth)
        self._draining = False  # set by end_long_polls: waits return at once
        # At most this many receives wait at once in this process; past it a receive
        # answers at once (empty, like a short poll), so idle pollers cannot pile up.
        self._max_long_polls = max_long_polls
        self._long_polls = 0
        self._watchers = Watchers(self._wakeups, self._ready, poll_interval)

    # lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Open the storage (applying migrations) and start background work."""
        await self.storage.open()
        await self.storage.listen(self._wakeups.notify)
        if self._sweep_interval:
            self._background.append(asyncio.create_task(self._sweep_forever()))

    async def close(self) -> None:
        """Stop background work and close the storage."""
        for task in self._background:
            await stop_task(task)
        self._background.clear()
        await self._watchers.close()
        await self.redrive.close()
        await self._signal.close()
        self._wakeups.notify(None)
        await self.storage.close()

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def now(self) -> int | None:
        """The injected clock's time, or None to let the database decide."""
        return self._clock() if self._clock is not None else None

    def wall_now(self) -> int:
        """A time in ms for decisions made here rather than in SQL."""
        return self._clock() if self._clock is not None else system_clock()

    def _observe(self, event: str, queue: Queue, count: int) -> None:
        for observer in self.observers:
            observer(event, queue, count)

    @property
    def waiting_receives(self) -> int:
        """How many receives of this process are waiting in a long poll now."""
        return self._long_polls

    def end_long_polls(self) -> None:
        """Answer every waiting long poll now (empty) and every later one at once: the
        server is shutting down, and its clients should not hang until it is gone."""
        self._draining = True
        self._wakeups.notify(None)

    def wake(self, queue_id: int | None) -> None:
        """Wake this process's long polls on a queue (None: all)."""
        self._wakeups.notify(queue_id)

    async def signal(self, queue_id: int) -> None:
        """Wake long polls on a queue here and in every other process."""
        self._wakeups.notify(queue_id)
        await self._signal(queue_id)

    # queues -------------------------------------------------------------------------
    async def queue(self, name: str, region: str | None = None) -> Queue:
        """A queue by name (cached for a moment), or QueueNotFound."""
        key = (region or self.region, name)
        cached = self._queues.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # A name that no queue can have never reaches SQL (NUL or a lone surrogate fails there).
        valid = isinstance(name, str) and (v.QUEUE_NAME.fullmatch(name)
                                           or v.FIFO_QUEUE_NAME.fullmatch(name))
        queue = await self.storage.queue_get(key[0], name) if valid else None
        if queue is None:
            self._queues.pop(key, None)
            raise QueueNotFound(f"Queue {name[:100]!r} does not exist.")
        self._queues[key] = (time.monotonic() + self._queue_cache_seconds, queue)
        return queue

    def _forget(self, region: str, name: str, *, changed: bool = True) -> None:
        self.queue_changes += changed
        self._queues.pop((region, name), None)
        self._stats.pop(region, None)

    async def create_queue(self, name: str, attributes: Mapping[str, Any] | None = None,
                           region: str | None = None) -> tuple[Queue, bool]:
        """Create a queue; an existing one with the same given attributes is returned as is.

        Returns the queue and True when it was created now. Asking again with different
        attributes is QueueAlreadyExists (only the attributes given are compared).
        """
        region = v.check_region(region or self.region)
        v.check_new_queue_name(name)
        given = dict(attributes or {})
        attrs = v.parse_queue_attributes(name, given)
        check_supported(self.storage, attrs)
        await check_dead_letter(self, region, name, attrs)
        row = QueueRow(region, name, dumps_json(attrs.to_json()), attrs.paused)
        queue, created = await self.storage.queue_create(row, self.now())
        if not created:
            existing = queue.attributes.to_json()
            wanted = attrs.to_json()
            differs = [k for k in given if k != "tags" and existing[k] != wanted[k]]
            if differs:
                raise QueueAlreadyExists(
                    f"Queue {name!r} already exists with a different {differs[0]}.")
        self._forget(region, name, changed=created)
        return queue, created

    async def get_queue(self, name: str, region: str | None = None) -> Queue:
        """A queue, read fresh from the database."""
        self._forget(region or self.region, name, changed=False)
        return await self.queue(name, region)

    async def list_queues(self, prefix: str = "", after: str | None = None, limit: int = 1000,
                          region: str | None = None) -> list[Queue]:
        """Queues by name, optionally starting with `prefix`, paged by `after`."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000.", field="limit")
        return await self.storage.queue_list(
            QueueListParams(region or self.region, prefix, after, limit))

    async def all_queues(self, prefix: str = "", region: str | None = None) -> list[Queue]:
        """Every queue of the region starting with `prefix`, by name (paged through)."""
        found: list[Queue] = []
        after: str | None = None
        while True:
            page = await self.list_queues(prefix, after, 1000, region)
            found += page
            if len(page) < 1000:
                return found
            after = page[-1].name

    async def queue_catalog_stamp(self, region: str | None = None) -> tuple[int, int]:
        """A value that changes when any process creates, changes or deletes a queue of the
        region (so a list of them kept in memory knows when to read it again)."""
        return await self.storage.queue_catalog_stamp(region or self.region)

    async def update_queue(self, name: str, attributes: Mapping[str, Any],
                           region: str | None = None) -> Queue:
        """Change some attributes of a queue."""
        region = region or self.region
        queue = await self.get_queue(name, region)
        attrs = v.parse_queue_attributes(name, attributes, queue.attributes)
        await check_dead_letter(self, region, name, attrs)
        updated = await self.storage.queue_update(QueueUpdateParams(
            queue.id, dumps_json(attrs.to_json()), attrs.paused, self.now()))
        self._forget(region, name)
        if updated is None:
            raise QueueNotFound(f"Queue {name[:100]!r} does not exist.")
        if queue.attributes.paused and not attrs.paused:
            await self.signal(queue.id)
        return updated

    async def delete_queue(self, name: str, region: str | None = None) -> None:
        """Delete a queue and every message in it."""
        region = region or self.region
        queue = await self.get_queue(name, region)
        await self.storage.queue_delete(queue.id)
        self._forget(region, name)
        self.wake(queue.id)

    async def purge_queue(self, name: str, region: str | None = None) -> int:
        """Delete every message of a queue; returns how many were deleted."""
        queue = await self.queue(name, region)
        purged = await self.storage.queue_purge(queue.id)
        self._stats.pop(queue.region, None)
        return purged

    async def queue_stats(self, name: str, region: str | None = None) -> QueueStats:
        """Exact counts for one queue."""
        queue = await self.queue(name, region)
        return await self.storage.queue_stats(queue.id, self.now())

    async def all_queue_stats(self, region: str | None = None) -> dict[int, QueueStats]:
        """Counts for every queue of a region by queue id, at most a few seconds old."""
        region = region or self.region
        cached = self._stats.get(region)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        stats = await self.storage.queue_stats_all(region, self.now())
        self._stats[region] = (time.monotonic() + self._stats_cache_seconds, stats)
        return stats

    # messages -----------------------------------------------------------------------
    async def send(self, queue_name: str, entries: Sequence[SendEntry],
                   region: str | None = None, *, connection: object = None
                   ) -> list[SendResult]:
        """Send a batch atomically: every entry is stored, or none (the bad one is named).

        `connection`: the application's own PostgreSQL connection (asyncpg or psycopg 3)
        with a transaction open: the messages are written there and exist, and wake
        consumers, only if that transaction commits (transactional enqueue).
        """
        out = await batches.prepare_send(self, queue_name, entries, region,
                                         bound=connection is not None)
        storage = self.storage if connection is None else self.storage.bound(connection)
        results = await storage.message_send_many(out.params)
        await batches.sent(self, out, results, None if connection is None else storage)
        return results

    async def receive(self, queue_name: str, max_messages: int = 10,
                      visibility_timeout: int | None = None, wait_seconds: int | None = None,
                      region: str | None = None, *, skip_groups: Sequence[str] = (),
                      abandoned: asyncio.Event | None = None) -> list[Message]:
        """Lease up to `max_messages`; with `wait_seconds`, wait for the first to arrive.

        `skip_groups` (standard queues): pass over the messages of these message groups,
        leaving them for a later receive (a worker's per-key limited jobs whose keys are at
        their limit, `conveyor.worker.keys`). `abandoned`: once set (the caller's client
        went away, `conveyor.hangups`), the wait ends and nothing more is leased."""
        v.check_receive(max_messages, visibility_timeout, wait_seconds)
        skip = v.check_skip_groups(skip_groups)
        queue = await self.queue(queue_name, region)
        if skip and queue.attributes.fifo:
            raise InvalidInput("skip_groups is for standard queues; a FIFO queue already "
                               "holds back a group with a message in flight.",
                               field="skip_groups")
        max_messages = await self.quotas.check_receive(queue, max_messages, self.now())
        attrs = queue.attributes
        wait = attrs.receive_wait_seconds if wait_seconds is None else wait_seconds
        deadline = time.monotonic() + wait
        while True:
            if abandoned is not None and abandoned.is_set():
                return []
            ticket = self._wakeups.ticket(queue.id)
            params = await self._receive_params(queue, max_messages, visibility_timeout)
            if skip:
                params = dataclasses.replace(params, skip_groups=skip)
            messages = await self.storage.message_receive(params)
            for released in params.released:  # a dead-lettered flow node's parents
                await self.signal(released)
            if messages:
                if self.observers:
                    self._observe("received", queue, len(messages))
                return messages
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._draining or (
                    self._max_long_polls is not None
                    and self._long_polls >= self._max_long_polls):
                return []
            self._long_polls += 1
            self._watchers.enter(queue.id)
            try:
                await Wakeups.wait(ticket, remaining, abandoned)
            finally:
                self._long_polls -= 1
                self._watchers.leave(queue.id)
            queue = await self.queue(queue_name, region)

    async def _ready(self, queue_id: int) -> bool:
        return await self.storage.message_ready(queue_id, self.now())

    async def _receive_params(self, queue: Queue, limit: int,
                              visibility_timeout: int | None) -> ReceiveParams:
        attrs = queue.attributes
        dlq_id: int | None = None
        max_receives = NO_RECEIVE_LIMIT
        if attrs.dead_letter_queue is not None and attrs.max_receive_count is not None:
            try:
                dlq_id = (await self.queue(attrs.dead_letter_queue, queue.region)).id
                max_receives = attrs.max_receive_count
            except QueueNotFound:
                log.warning("queue %s: dead-letter queue %s is gone; not dead-lettering",
                            queue.name, attrs.dead_letter_queue)
        timeout = attrs.visibility_timeout if visibility_timeout is None else visibility_timeout
        return ReceiveParams(queue.id, queue.name, limit, timeout * 1000, max_receives,
                             dlq_id, self.now(), attrs.fifo)

    async def delete(self, queue_name: str, receipt_handles: Sequence[str],
                     region: str | None = None) -> list[EntryResult]:
        """Acknowledge messages; a stale handle (the message was received again) deletes
        nothing and says so."""
        leases, results = batches.decode_leases(receipt_handles)
        queue = await self.queue(queue_name, region)
        deleted = await self.storage.message_delete_many(queue.id, leases) if leases else set()
        batches.deleted(self, queue, deleted)
        return [batches.lease_result(r, h, deleted) for r, h in zip(results, receipt_handles)]

    async def delete_leased(self, queue_name: str, message_id: str,
                            region: str | None = None, token: int | None = None) -> bool:
        """Delete a message by its id while a lease on it holds (whoever holds it, or with
        `token` only that lease); False when it is unknown, gone or visible again. The WQ
        API's acknowledgement, and SQS's on FIFO queues (where an expired handle fails)."""
        message_id = v.check_message_id(message_id, "message_id")
        queue = await self.queue(queue_name, region)
        deleted = await self.storage.message_delete_leased(queue.id, message_id, self.now(),
                                                           token)
        if deleted and self.observers:
            self._observe("deleted", queue, 1)
        return deleted

    async def change_visibility(self, queue_name: str, entries: Sequence[VisibilityEntry],
                                region: str | None = None) -> list[EntryResult]:
        """Extend leases, or release them with a timeout of 0 (a nack)."""
        v.check_batch_size(len(entries))
        queue = await self.queue(queue_name, region)
        changes: list[tuple[Lease, int]] = []
        results: list[EntryResult | Lease] = []
        for index, entry in enumerate(entries):
            try:
                lease = Lease(*decode_receipt_handle(entry.receipt_handle))
                timeout = v.check_visibility_timeout(entry.visibility_timeout, index)
            except InvalidInput as exc:
                results.append(EntryResult(str(entry.receipt_handle)[:200], "invalid",
                                           exc.message))
                continue
            changes.append((lease, timeout * 1000))
            results.append(lease)
        changed = (await self.storage.message_change_visibility_many(
            queue.id, changes, self.now()) if changes else set())
        if any(ms == 0 and lease in changed for lease, ms in changes):
            await self.signal(queue.id)
        return [batches.lease_result(r, e.receipt_handle, changed)
                for r, e in zip(results, entries)]

    async def retry(self, queue_name: str, receipt_handle: str, delay_seconds: int,
                    error: str | None = None, region: str | None = None, *,
                    dead_letter: bool = False, snooze: bool = False) -> EntryResult:
        """End a lease and redeliver after `delay_seconds`, keeping the id and receive count
        and recording the error (the worker's retry with backoff); with `dead_letter`, move
        it to the queue's dead-letter queue now instead, where redrive finds its source;
        with `snooze`, give back the receive that leased it (a job's `Snooze`: no attempt
        spent)."""
        queue = await self.queue(queue_name, region)
        lease = Lease(*decode_receipt_handle(receipt_handle))
        if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, int) or \
                not 0 <= delay_seconds <= queue.attributes.retention_seconds:
            raise InvalidInput("delay_seconds must be between 0 and the queue's retention.",
                               field="delay_seconds")
        target = queue
        if dead_letter:
            if queue.attributes.dead_letter_queue is None:
                raise InvalidInput(f"Queue {queue_name!r} has no dead-letter queue.",
                                   field="dead_letter")
            target = await self.queue(queue.attributes.dead_letter_queue, queue.region)
            delay_seconds = 0
        done = await self.storage.message_retry(MessageRetryParams(
            queue.id, lease, delay_seconds * 1000, error[:4000] if error else None, self.now(),
            target.id if dead_letter else None, refund=snooze and not dead_letter))
        if done and delay_seconds == 0:
            await self.signal(target.id)
        return EntryResult(receipt_handle, "ok" if done else "stale",
                           None if done else batches.STALE)

    async def peek(self, queue_name: str, limit: int = 10, after: str | None = None,
                   region: str | None = None) -> list[PeekedMessage]:
        """Look at messages without leasing them, oldest first."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000.", field="limit")
        if after is not None:
            after = v.check_message_id(after, "after")
        queue = await self.queue(queue_name, region)
        return await self.storage.message_peek(
            MessagePeekParams(queue.id, limit, after, self.now()))

    # redrive ------------------------------------------------------------------------
    async def start_redrive(self, queue_name: str, destination: str | None = None,
                            max_per_second: int | None = None, region: str | None = None,
                            wait: float = 1.0) -> MoveTask:
        """Move a dead-letter queue's messages back (see `Redrive.start`)."""
        return await self.redrive.start(queue_name, destination, max_per_second, region, wait)

    async def table_health(self) -> list[TableHealth]:
        """Size and dead weight of the storage's tables (for /metrics and the dashboard)."""
        return await self.storage.table_health()

    async def snapshot_hold(self) -> SnapshotHold | None:
        """The oldest open snapshot holding back cleanup (a long transaction or reader)."""
        return await self.storage.snapshot_hold()

    # retention ----------------------------------------------------------------------
    async def sweep(self) -> int:
        """Delete messages past their queue's retention and old deduplication ids, and
        expire the job system's and ledger's old rows; returns the messages deleted."""
        return await retention.sweep(self)

    async def _sweep_forever(self) -> None:
        assert self._sweep_interval
        await retention.sweep_forever(self, self._sweep_interval)
