"""The storage contract: every protocol a database driver implements, joined in `Storage`.

What the broker needs from a database, at the level of queue operations (River's
`riverdriver` is the model). Every dialect implements the same noun-first methods over the
same schema; the broker holds all the logic (validation, limits, redrive rules, long
polling) and passes plain parameters, one params object (`conveyor.storage.params`,
re-exported here) for any call of more than three. Times are milliseconds since the epoch;
`now=None` means "the database's own clock", which is what production uses so that nodes
with skewed clocks cannot steal each other's leases.

The notification path's protocols (ledger, recipients, templates, digests and the like)
stand in `conveyor.storage.notify_contract`; the rest are here.

`tests/storage/` drives this contract directly, on every dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from conveyor.flows import Flow
from conveyor.heartbeats import WorkerInfo
from conveyor.jobs import CronLease, JobAttempt, JobStatus
from conveyor.keys import ApiKey
from conveyor.models import (
    Message,
    MoveTask,
    PeekedMessage,
    Queue,
    QueueStats,
    SendResult,
    SnapshotHold,
    TableHealth,
)
from conveyor.storage.notify_contract import (
    DeliveryEventStorage,
    DigestStorage,
    LedgerStorage,
    NotifyTxStorage,
    RecipientStorage,
    TemplateStorage,
)
from conveyor.storage.params import (
    ApiKeyInsertParams,
    AttemptRow,
    DeliveryPutParams,
    DeliverySeriesParams,
    DigestAddParams,
    FlowEnd,
    FlowInsertParams,
    FlowNodeRow,
    HoldRow,
    JobListParams,
    JobRow,
    Lease,
    MessageMoveParams,
    MessagePeekParams,
    MessageRetryParams,
    MessageSendParams,
    NewMessages,
    QueueListParams,
    QueueRow,
    QueueUpdateParams,
    RateState,
    RateTakeParams,
    ReceiveParams,
    SlotAcquireParams,
    SlotRenewParams,
    WorkerPutParams,
)

__all__ = [
    "DEDUP_WINDOW_MS",
    "NO_RECEIVE_LIMIT",
    "ApiKeyInsertParams",
    "AttemptRow",
    "DeliveryPutParams",
    "DeliverySeriesParams",
    "DigestAddParams",
    "FlowEnd",
    "FlowInsertParams",
    "FlowNodeRow",
    "FlowStorage",
    "HoldRow",
    "JobListParams",
    "JobRow",
    "JobStorage",
    "KeyStorage",
    "Lease",
    "MessageMoveParams",
    "MessagePeekParams",
    "MessageRetryParams",
    "MessageSendParams",
    "MessageStorage",
    "NewMessages",
    "QueueListParams",
    "QueueRow",
    "QueueUpdateParams",
    "RateState",
    "RateTakeParams",
    "ReceiveParams",
    "SignalCallback",
    "SlotAcquireParams",
    "SlotRenewParams",
    "Storage",
    "WorkerPutParams",
    "WorkerStorage",
]

# A receive never looks at more rows than this beyond max_messages: the bound that keeps
# dead-lettering inside the claim cheap.
NO_RECEIVE_LIMIT = 2_147_483_647

DEDUP_WINDOW_MS = 300_000
"""How long a deduplication id holds (SQS: 5 minutes)."""

SignalCallback = Callable[[int | None], None]
"""Called with a queue id when another process made messages visible there (None: any)."""


class MessageStorage(Protocol):
    """Queues, their messages, redrive (move) tasks and the wake-ups between processes."""

    # queues -------------------------------------------------------------------------
    async def queue_create(self, row: QueueRow, now: int | None) -> tuple[Queue, bool]:
        """Insert a queue, or return the existing one of that name; True when inserted."""

    async def queue_get(self, region: str, name: str) -> Queue | None:
        """One queue by name."""

    async def queue_get_by_id(self, queue_id: int) -> Queue | None:
        """One queue by id."""

    async def queue_regions(self) -> list[str]:
        """Every region that has a queue."""

    async def queue_catalog_stamp(self, region: str) -> tuple[int, int]:
        """(queues, latest `updated_at`) of a region: it changes when a queue is created,
        changed or deleted."""

    async def queue_list(self, params: QueueListParams) -> list[Queue]:
        """Queues whose name starts with the prefix, by name (bytewise), after `after`."""

    async def queue_update(self, params: QueueUpdateParams) -> Queue | None:
        """Replace a queue's attributes; None when it is gone."""

    async def queue_delete(self, queue_id: int) -> bool:
        """Delete a queue with its messages and deduplication ids."""

    async def queue_purge(self, queue_id: int) -> int:
        """Delete every message of a queue and its deduplication ids (a message sent again
        after a purge is new, as on SQS); returns how many messages."""

    async def queue_stats(self, queue_id: int, now: int | None, *,
                          recent: bool = False) -> QueueStats:
        """Exact counts for one queue, in one snapshot; with `recent`, the last counts
        read instead whenever reading them now would wait (PostgreSQL: for a slot being
        truncated), for callers that check a limit on every receive."""

    async def queue_stats_all(self, region: str, now: int | None) -> dict[int, QueueStats]:
        """Counts for every queue of a region that holds messages."""

    # messages -----------------------------------------------------------------------
    async def message_send_many(self, params: MessageSendParams) -> list[SendResult]:
        """Insert messages in one transaction; deduplicated ones return the first id.

        FIFO batches get increasing sequence numbers, in commit order per queue."""

    async def message_ready(self, queue_id: int, now: int | None) -> bool:
        """Whether the queue (not paused) holds a message visible now: a few index seeks,
        however many messages are in flight or delayed."""

    async def message_receive(self, params: ReceiveParams) -> list[Message]:
        """Lease visible messages, moving any over the receive limit to the dead-letter queue.

        With `params.fifo`, the rows are chosen by `conveyor.fifo.choose`."""

    async def message_delete_many(self, queue_id: int, leases: Sequence[Lease]) -> set[Lease]:
        """Delete messages whose lease is current; returns the leases that matched."""

    async def message_delete_leased(self, queue_id: int, message_id: str,
                                    now: int | None, token: int | None = None) -> bool:
        """Delete a message by id while it is leased (whichever lease, or with `token`
        only that one); True if deleted."""

    async def message_change_visibility_many(self, queue_id: int,
                                             changes: Sequence[tuple[Lease, int]],
                                             now: int | None) -> set[Lease]:
        """Set visible_at = now + ms for current leases; returns the leases that matched."""

    async def message_retry(self, params: MessageRetryParams) -> bool:
        """End a lease and make the message visible again after a delay, recording an
        error; False when the lease is no longer current."""

    async def message_peek(self, params: MessagePeekParams) -> list[PeekedMessage]:
        """Messages of a queue without leasing them, by id."""

    async def message_move(self, params: MessageMoveParams) -> int:
        """Move up to `limit` messages not in flight out of a dead-letter queue, to
        `to_queue_id` or else to the queue each came from; receive counts reset."""

    async def message_move_ids(self, from_queue_id: int, to_queue_id: int,
                               message_ids: Sequence[str], now: int | None) -> list[str]:
        """Move these messages (not in flight) from a dead-letter queue to `to_queue_id`,
        receive counts reset; returns the ids that moved."""

    async def message_delete_ids(self, queue_id: int, message_ids: Sequence[str],
                                 now: int | None) -> list[str]:
        """Delete these messages of a queue unless in flight; returns the ids deleted."""

    async def message_delete_queued(self, queue_id: int, message_ids: Sequence[str],
                                    now: int | None) -> list[str]:
        """Delete these messages of a queue unless in flight (leased, the lease not
        lapsed): waiting, delayed and between-retries ones go; returns the ids deleted."""

    async def message_count_movable(self, from_queue_id: int, now: int | None,
                                    to_queue_id: int | None = None) -> int:
        """How many messages `message_move` would move in all (with `to_queue_id`: every
        one not in flight, whatever brought it to the queue)."""

    async def message_expire(self, queue_id: int, before_id: str, limit: int) -> int:
        """Delete up to `limit` messages of a queue with ids below `before_id` (retention)."""

    async def dedup_expire(self, now: int | None, limit: int) -> int:
        """Forget deduplication ids older than the window."""

    async def claim_release(self, key: str, message_id: str) -> bool:
        """Drop a unique/debounce claim (`conveyor.storage.claims`) if that message holds
        it (a unique job that ended in a state outside its `by_state`); True if dropped."""

    async def claim_expire(self, now: int | None, limit: int) -> int:
        """Forget up to `limit` claims past their expiry."""

    # move tasks ---------------------------------------------------------------------
    async def move_task_create(self, source_queue_id: int, task: MoveTask) -> None:
        """Record a new move task."""

    async def move_task_update(self, task: MoveTask) -> bool:
        """Save a task's progress or end, only while it is still running (so a cancel
        made elsewhere is never overwritten); True when saved."""

    async def move_task_get(self, task_id: str) -> MoveTask | None:
        """One task by id."""

    async def move_task_list(self, source_queue_id: int) -> list[MoveTask]:
        """Tasks of a source queue, newest first."""

    # wake-ups -----------------------------------------------------------------------
    async def signal(self, queue_id: int) -> None:
        """Tell other processes that messages became visible in a queue."""

    async def listen(self, callback: SignalCallback) -> None:
        """Start delivering other processes' signals to `callback` (on this event loop)."""


class JobStorage(Protocol):
    """What workers share besides messages: rate-limit buckets (GCRA), concurrency slots,
    cron ticks and job statuses. Each write is atomic across processes and machines."""

    async def rate_take(self, params: RateTakeParams) -> RateState:
        """Take up to `want` tokens from the key's bucket (see `storage.limits.gcra`); none
        while the key is penalized."""

    async def rate_penalize(self, key: str, ms: int, now: int | None) -> None:
        """Give the key no tokens for `ms` (never shortening a longer penalty)."""

    async def rate_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` buckets that are full and unpenalized (as if never used)."""

    async def slot_acquire(self, params: SlotAcquireParams) -> int:
        """Grant up to `want` more slots to `holder` so that live slots of `key` stay at
        most `limit`; extends the holder's lease; returns how many were granted."""

    async def slot_renew(self, params: SlotRenewParams) -> int:
        """Extend the holder's live slots of `key`; returns how many it holds (0: lapsed)."""

    async def slot_release(self, key: str, holder: str, count: int) -> None:
        """Give back up to `count` of the holder's slots."""

    async def slot_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` lapsed or empty slot rows."""

    async def cron_claim(self, schedule: str, tick_at: int, now: int | None) -> bool:
        """True for the first claim of (schedule, tick) only."""

    async def cron_lease(self, schedule: str, tick_at: int, lease_ms: int, window_ms: int,
                         now: int | None) -> CronLease:
        """Claim (schedule, tick) as a lease: won when unclaimed, or when its claim is
        still pending (not sent) and between `lease_ms` and `window_ms` old; with the
        schedule's other lapsed pending ticks of that age."""

    async def cron_sent(self, schedule: str, tick_at: int) -> None:
        """Mark a leased tick sent: final, never taken over."""

    async def cron_expire(self, keep_ms: int, now: int | None, limit: int) -> int:
        """Forget up to `limit` ticks claimed more than `keep_ms` ago."""

    async def job_put_many(self, rows: Sequence[JobRow], now: int | None,
                           attempts: Sequence[AttemptRow] = ()) -> None:
        """Insert or replace statuses (ids unique within the batch), in one transaction; a
        row behind the stored one's progress is ignored unless that one is dead. The
        attempts (unique within the batch) are recorded in the same transaction; an
        attempt already ended takes no further write."""

    async def job_attempts(self, job_id: str) -> list[JobAttempt]:
        """A job's recorded attempts, oldest start first."""

    async def job_get(self, job_id: str, now: int | None) -> JobStatus | None:
        """One status, unless it has expired."""

    async def job_counts(self, queue: str | None, now: int | None) -> dict[str, int]:
        """Unexpired statuses by status, of one queue or all."""

    async def job_list(self, params: JobListParams) -> list[JobStatus]:
        """Up to `limit` unexpired statuses matching the filters, newest update first,
        after the keyset cursor (see `JobListParams`)."""

    async def job_delete_many(self, job_ids: Sequence[str]) -> int:
        """Forget these statuses (whatever their state) and their attempts; returns how
        many statuses there were."""

    async def job_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` expired statuses and their attempts."""

    async def job_counts_by_task(self, now: int | None) -> dict[tuple[str, str, str], int]:
        """Unexpired statuses by (queue, task, status); a job without a task name counts
        under task ""."""


class FlowStorage(Protocol):
    """Flows (`conveyor.flows`): jobs that wait for others. An end is recorded once per
    node, and a node whose wait is over is released (its message inserted) in the same
    transaction, so it runs once however many processes record ends at once."""

    async def flow_insert(self, params: FlowInsertParams) -> None:
        """Store a flow and send the messages of its ready nodes, all in one transaction."""

    async def flow_end_many(self, ends: Sequence[FlowEnd], now: int | None) -> list[int]:
        """Record ends, release what they complete (`storage.flow_steps`); the queue ids
        that got messages."""

    async def flow_cancel_queued(self, queue_id: int, job_ids: Sequence[str], error: str,
                                 now: int | None) -> tuple[list[str], list[int]]:
        """Delete these jobs' messages unless in flight (as `message_delete_queued`) and,
        in the same transaction, record a failed end (with `error`) for each deleted one
        that is a flow node; (the ids deleted, the queue ids that got released messages)."""

    async def flow_results(self, flow_id: str, node: int) -> list[tuple[str, str | None]]:
        """(state, result JSON text) of each node that `node` waits for, in node order."""

    async def flow_get(self, flow_id: str, now: int | None) -> Flow | None:
        """A flow's nodes (with what each waits for), or None when unknown or expired."""

    async def flow_of_job(self, job_id: str, now: int | None) -> str | None:
        """The id of the flow a job belongs to, or None."""

    async def flow_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` expired nodes; how many went."""


class CancelStorage(Protocol):
    """Cancel requests of jobs (see `conveyor.broker.job_cancel`): a job id kept until
    its expiry, so the worker running that job finds it on its next check."""

    async def cancel_put(self, job_id: str, keep_ms: int, now: int | None) -> None:
        """Record a cancel request, kept `keep_ms` (a repeat only keeps it longer)."""

    async def cancel_find(self, job_ids: Sequence[str], now: int | None) -> list[str]:
        """Which of these jobs have an unexpired cancel request."""

    async def cancel_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` expired requests."""


class KeyStorage(Protocol):
    """API keys (see `conveyor.broker.api_keys`): token hashes for bearer look-ups, and
    each key's SigV4 secret (maybe sealed) for the SQS endpoint."""

    async def api_key_insert(self, params: ApiKeyInsertParams) -> bool:
        """Store a key; False when an active key already has the name (or the id is taken)."""

    async def api_key_by_hash(self, token_hash: str) -> ApiKey | None:
        """The active key with this token hash."""

    async def api_key_by_id(self, key_id: str) -> tuple[ApiKey, str | None] | None:
        """The active key with this id and its stored secret (None: made before secrets)."""

    async def api_key_list(self) -> list[ApiKey]:
        """Every key, revoked ones too."""

    async def api_key_revoke(self, name: str, now: int | None) -> int:
        """Revoke the active key of this name (or id); how many were revoked."""

    async def api_key_count(self) -> int:
        """How many keys were ever made (revoked ones too)."""


class WorkerStorage(Protocol):
    """Worker heartbeats: one row per live worker process, forgotten `ttl_ms` after its
    last beat (see `conveyor.broker.workers`)."""

    async def worker_put(self, params: WorkerPutParams) -> None:
        """Insert or replace a worker's row; its `started_at` stays that of the first beat
        (of the row's life: a row past its expiry starts over)."""

    async def worker_list(self, now: int | None) -> list[WorkerInfo]:
        """Unexpired workers, by start time then id."""

    async def worker_delete(self, worker_id: str) -> bool:
        """Forget a worker (a clean shutdown); True when it was there."""

    async def worker_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` expired rows."""


class Storage(MessageStorage, JobStorage, FlowStorage, CancelStorage, LedgerStorage,
              NotifyTxStorage, KeyStorage, WorkerStorage, RecipientStorage, TemplateStorage,
              DigestStorage, DeliveryEventStorage, Protocol):
    """A database driver: the whole contract, plus its lifecycle."""

    dialect: str

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None:
        """Release connections and background tasks."""

    async def now(self) -> int:
        """The database clock, in milliseconds."""

    async def schema_version(self) -> tuple[int, int]:
        """(applied, known) migration numbers; equal when the schema is current."""

    async def table_health(self) -> list[TableHealth]:
        """Size and dead weight of conveyor's tables (postgres_maintenance.py and
        sqlite_maintenance.py keep them bounded)."""

    async def snapshot_hold(self) -> SnapshotHold | None:
        """The oldest open snapshot that keeps dead weight from being reclaimed, if any."""

    def bound(self, connection: object) -> Storage:
        """This storage writing through the application's own connection, inside its
        transaction (PostgreSQL; elsewhere `Unsupported`)."""
