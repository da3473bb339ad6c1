"""The Storage protocol: what the broker needs from a database, at the level of queue operations.

Every dialect implements the same noun-first methods over the same schema; the broker holds
all the logic (validation, limits, redrive rules, long polling) and passes plain parameters.
Times are milliseconds since the epoch; `now=None` means "the database's own clock", which
is what production uses so that nodes with skewed clocks cannot steal each other's leases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar

from conveyor.jobs import JobStatus
from conveyor.models import (
    Message,
    MoveTask,
    PeekedMessage,
    Queue,
    QueueStats,
    SendResult,
    TableHealth,
)
from conveyor.storage.ledger import LedgerStorage

T = TypeVar("T")

# A receive never looks at more rows than this beyond max_messages: the bound that keeps
# dead-lettering inside the claim cheap.
NO_RECEIVE_LIMIT = 2_147_483_647

DEDUP_WINDOW_MS = 300_000


@dataclass(frozen=True, slots=True)
class NewMessages:
    """A batch to insert, column by column: item i of every list is message i.

    Columns rather than row objects because that is what the drivers take (arrays on
    PostgreSQL) and the send path is hot. Ids are made by the broker (time-ordered UUIDs).
    """

    ids: list[str]
    bodies: list[str]
    kinds: list[int]
    attributes: list[str | None]
    priorities: list[int]
    delays_ms: list[int]
    group_ids: list[str | None]
    dedup_ids: list[str | None]
    # What the deduplication window is keyed on: the id itself, or group and id together
    # for FIFO queues deduplicating per message group.
    dedup_keys: list[str | None]

    def __len__(self) -> int:
        return len(self.ids)

    def pick(self, indexes: Sequence[int]) -> NewMessages:
        """The sub-batch of the given positions."""
        def take(column: list[T]) -> list[T]:
            return [column[i] for i in indexes]

        return NewMessages(take(self.ids), take(self.bodies), take(self.kinds),
                           take(self.attributes), take(self.priorities), take(self.delays_ms),
                           take(self.group_ids), take(self.dedup_ids), take(self.dedup_keys))


class Lease(NamedTuple):
    """What a receipt handle stands for: one message under one particular lease.

    A tuple so that sets of leases hash and compare in C on the ack path."""

    message_id: str
    token: int


@dataclass(frozen=True, slots=True)
class ReceiveParams:
    """Claim up to `limit` visible messages of one queue for `visibility_ms`."""

    queue_id: int
    queue_name: str
    limit: int
    visibility_ms: int
    max_receive_count: int
    dead_letter_queue_id: int | None
    now: int | None
    fifo: bool = False


@dataclass(frozen=True, slots=True)
class QueueRow:
    """What is stored for a queue besides its id (attributes as their JSON text)."""

    region: str
    name: str
    attributes: str
    paused: bool


SignalCallback = Callable[[int | None], None]
"""Called with a queue id when another process made messages visible there (None: any)."""


# the job system ---------------------------------------------------------------------
class RateState(NamedTuple):
    """A rate-limit key after a take: tokens granted, the theoretical arrival time (ms,
    fractional), the end of any penalty, and the "now" the take used (all ms)."""

    granted: int
    tat: float
    blocked_until: int
    now: int


class JobRow(NamedTuple):
    """A job status to store (the result as its JSON text)."""

    job_id: str
    status: str
    queue: str
    task: str | None
    attempts: int
    error: str | None
    result: str | None
    keep_seconds: int
    progress: int  # a write behind the stored row's progress is ignored


class JobsStorage(Protocol):
    """What workers share besides messages: rate-limit buckets (GCRA), concurrency slots,
    cron ticks and job statuses. Each write is atomic across processes and machines."""

    async def rate_take(self, key: str, interval_ms: float, burst: int, want: int,
                        now: int | None) -> RateState:
        """Take up to `want` tokens from the key's bucket (one token per `interval_ms`,
        at most `burst` at once); none while the key is penalized."""

    async def rate_penalize(self, key: str, ms: int, now: int | None) -> None:
        """Give the key no tokens for `ms` (never shortening a longer penalty)."""

    async def rate_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` buckets that are full and unpenalized (as if never used)."""

    async def slot_acquire(self, key: str, holder: str, limit: int, want: int,
                           lease_ms: int, now: int | None) -> int:
        """Grant up to `want` more slots to `holder` so that live slots of `key` stay at
        most `limit`; extends the holder's lease; returns how many were granted."""

    async def slot_renew(self, key: str, holder: str, lease_ms: int, now: int | None) -> int:
        """Extend the holder's live slots of `key`; returns how many it holds (0: lapsed)."""

    async def slot_release(self, key: str, holder: str, count: int) -> None:
        """Give back up to `count` of the holder's slots."""

    async def slot_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` lapsed or empty slot rows."""

    async def cron_claim(self, schedule: str, tick_at: int, now: int | None) -> bool:
        """True for the first claim of (schedule, tick) only."""

    async def cron_expire(self, keep_ms: int, now: int | None, limit: int) -> int:
        """Forget up to `limit` ticks claimed more than `keep_ms` ago."""

    async def job_put_many(self, rows: Sequence[JobRow], now: int | None) -> None:
        """Insert or replace statuses (ids unique within the batch), in one transaction."""

    async def job_get(self, job_id: str, now: int | None) -> JobStatus | None:
        """One status, unless it has expired."""

    async def job_counts(self, queue: str | None, now: int | None) -> dict[str, int]:
        """Unexpired statuses by status, of one queue or all."""

    async def job_expire(self, now: int | None, limit: int) -> int:
        """Delete up to `limit` expired statuses."""


class Storage(JobsStorage, LedgerStorage, Protocol):
    """A database holding queues and messages."""

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
        """Size and dead weight of conveyor's tables (see storage/*/maintenance.py, which
        keeps them bounded)."""

    def bound(self, connection: object) -> Storage:
        """This storage writing through the application's own connection, inside its
        transaction (PostgreSQL; elsewhere `Unsupported`)."""

    # queues -------------------------------------------------------------------------
    async def queue_create(self, row: QueueRow, now: int | None) -> tuple[Queue, bool]:
        """Insert a queue, or return the existing one of that name; True when inserted."""

    async def queue_get(self, region: str, name: str) -> Queue | None:
        """One queue by name."""

    async def queue_get_by_id(self, queue_id: int) -> Queue | None:
        """One queue by id."""

    async def queue_regions(self) -> list[str]:
        """Every region that has a queue."""

    async def queue_list(self, region: str, prefix: str, after: str | None,
                         limit: int) -> list[Queue]:
        """Queues whose name starts with `prefix`, by name, after `after`."""

    async def queue_update(self, queue_id: int, attributes: str, paused: bool,
                           now: int | None) -> Queue | None:
        """Replace a queue's attributes."""

    async def queue_delete(self, queue_id: int) -> bool:
        """Delete a queue and its messages."""

    async def queue_purge(self, queue_id: int) -> int:
        """Delete every message of a queue; returns how many."""

    async def queue_stats(self, queue_id: int, now: int | None) -> QueueStats:
        """Exact counts for one queue."""

    async def queue_stats_all(self, region: str, now: int | None) -> dict[int, QueueStats]:
        """Counts for every queue of a region that holds messages."""

    # messages -----------------------------------------------------------------------
    async def message_send_many(self, queue_id: int, batch: NewMessages, now: int | None,
                                fifo: bool = False) -> list[SendResult]:
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

    async def message_change_visibility_many(self, queue_id: int,
                                             changes: Sequence[tuple[Lease, int]],
                                             now: int | None) -> set[Lease]:
        """Set visible_at = now + ms for current leases; returns the leases that matched."""

    async def message_retry(self, queue_id: int, lease: Lease, delay_ms: int,
                            error: str | None, now: int | None) -> bool:
        """End a lease and make the message visible again after a delay, recording an error."""

    async def message_peek(self, queue_id: int, limit: int, after: str | None,
                           now: int | None) -> list[PeekedMessage]:
        """Messages of a queue without leasing them, by id."""

    async def message_move(self, from_queue_id: int, to_queue_id: int | None, limit: int,
                           now: int | None) -> int:
        """Move up to `limit` messages not in flight out of a dead-letter queue, to
        `to_queue_id` or else to the queue each came from; receive counts reset."""

    async def message_count_movable(self, from_queue_id: int, now: int | None) -> int:
        """How many messages `message_move` would move in all."""

    async def message_expire(self, queue_id: int, before_id: str, limit: int) -> int:
        """Delete up to `limit` messages of a queue with ids below `before_id` (retention)."""

    async def dedup_expire(self, now: int | None, limit: int) -> int:
        """Forget deduplication ids older than the window."""

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

