"""The values that cross the storage contract: one params object per call of more than three
arguments, and the rows the broker hands over or gets back.

River's driver does the same (`JobGetAvailableParams`, ...): a call's arguments travel as one
named, frozen object, so a new field is one line here and one in each dialect, and no caller
passes seven positional integers in the wrong order. Times are milliseconds since the epoch;
`now=None` means "the database's own clock".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from conveyor.ledger import NewDelivery
from conveyor.models import Claim

T = TypeVar("T")

__all__ = [
    "ApiKeyInsertParams",
    "AttemptRow",
    "DeliveryPutParams",
    "DeliverySeriesParams",
    "DigestAddParams",
    "FlowEnd",
    "FlowInsertParams",
    "FlowNodeRow",
    "HoldRow",
    "JobListParams",
    "JobRow",
    "Lease",
    "MessageMoveParams",
    "MessagePeekParams",
    "MessageRetryParams",
    "MessageSendParams",
    "NewMessages",
    "QueueListParams",
    "QueueRow",
    "QueueUpdateParams",
    "RateState",
    "RateTakeParams",
    "ReceiveParams",
    "SlotAcquireParams",
    "SlotRenewParams",
    "WorkerPutParams",
]


# queues -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QueueRow:
    """What is stored for a queue besides its id (attributes as their JSON text)."""

    region: str
    name: str
    attributes: str
    paused: bool


@dataclass(frozen=True, slots=True)
class QueueListParams:
    """Up to `limit` queues of a region whose name starts with `prefix`, by name, after
    `after` (None: from the start)."""

    region: str
    prefix: str
    after: str | None
    limit: int


@dataclass(frozen=True, slots=True)
class QueueUpdateParams:
    """A queue's new attributes (JSON text) and paused flag."""

    queue_id: int
    attributes: str
    paused: bool
    now: int | None


# messages ---------------------------------------------------------------------------
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
    # Unique/debounce claims (`conveyor.models.Claim`), None for a batch without any: the
    # plain send path then never looks at the claims table.
    claims: list[Claim | None] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def pick(self, indexes: Sequence[int]) -> NewMessages:
        """The sub-batch of the given positions."""
        def take(column: list[T]) -> list[T]:
            return [column[i] for i in indexes]

        return NewMessages(take(self.ids), take(self.bodies), take(self.kinds),
                           take(self.attributes), take(self.priorities), take(self.delays_ms),
                           take(self.group_ids), take(self.dedup_ids), take(self.dedup_keys),
                           None if self.claims is None else take(self.claims))


@dataclass(frozen=True, slots=True)
class MessageSendParams:
    """A batch for one queue; FIFO batches get increasing sequence numbers."""

    queue_id: int
    messages: NewMessages
    now: int | None
    fifo: bool = False


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
    # Message groups whose rows to pass over (standard queues): per-key limited jobs whose
    # keys are at their limit (conveyor.worker.keys).
    skip_groups: tuple[str, ...] = ()
    # Filled by the storage: the queues that got messages because a flow node moved to the
    # dead-letter queue here and its failed end released the nodes waiting for it (the
    # broker wakes their consumers).
    released: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MessageRetryParams:
    """End a lease and make its message visible again after `delay_ms`, recording `error`;
    with `dead_letter_queue_id`, move it to that queue instead, remembering its source."""

    queue_id: int
    lease: Lease
    delay_ms: int
    error: str | None
    now: int | None
    dead_letter_queue_id: int | None = None
    # A snooze: the receive that leased it is given back (no attempt spent).
    refund: bool = False


@dataclass(frozen=True, slots=True)
class MessagePeekParams:
    """Up to `limit` messages of a queue by id, after the id `after` (None: the first)."""

    queue_id: int
    limit: int
    after: str | None
    now: int | None


@dataclass(frozen=True, slots=True)
class MessageMoveParams:
    """Up to `limit` messages out of a dead-letter queue, to `to_queue_id` (None: back to
    the queue each came from)."""

    from_queue_id: int
    to_queue_id: int | None
    limit: int
    now: int | None


# the job system ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RateTakeParams:
    """Up to `want` tokens of `key`'s bucket: one token per `interval_ms` (fractional), at
    most `burst` at once."""

    key: str
    interval_ms: float
    burst: int
    want: int
    now: int | None


class RateState(NamedTuple):
    """A rate-limit key after a take: tokens granted, the theoretical arrival time (ms,
    fractional), the end of any penalty, and the "now" the take used (all ms)."""

    granted: int
    tat: float
    blocked_until: int
    now: int


@dataclass(frozen=True, slots=True)
class SlotAcquireParams:
    """Up to `want` more of `key`'s `limit` slots for `holder`, leased for `lease_ms`."""

    key: str
    holder: str
    limit: int
    want: int
    lease_ms: int
    now: int | None


@dataclass(frozen=True, slots=True)
class SlotRenewParams:
    """Extend `holder`'s live slots of `key` to `lease_ms` from now."""

    key: str
    holder: str
    lease_ms: int
    now: int | None


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
    report: str | None = None  # the job's own progress report, as JSON text
    key: str | None = None  # kept from the first write that has one
    args: str | None = None  # the call as JSON text, kept likewise


class AttemptRow(NamedTuple):
    """An attempt of a job to record (`job_put_many`): a start (`ended_at` None) or an end.
    Named by (job_id, attempt, started_at); an ended attempt takes no further write."""

    job_id: str
    attempt: int
    started_at: int
    worker: str | None
    ended_at: int | None
    outcome: str
    error: str | None
    traceback: str | None


@dataclass(frozen=True, slots=True)
class JobListParams:
    """Unexpired statuses matching every filter given (None: any), newest update first
    (by `updated_at`, then id, both descending), strictly after the keyset `after`
    ((updated_at, id) of the last row of the previous page); `*_since` inclusive,
    `*_until` exclusive, all ms since the epoch."""

    status: str | None
    task: str | None
    queue: str | None
    updated_since: int | None
    updated_until: int | None
    after: tuple[int, str] | None
    limit: int
    now: int | None
    key: str | None = None
    created_since: int | None = None
    created_until: int | None = None


# the delivery ledger ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeliveryPutParams:
    """Notifications to record with `status`, kept for `keep_ms`."""

    rows: Sequence[NewDelivery]
    status: str
    keep_ms: int
    now: int | None


@dataclass(frozen=True, slots=True)
class DeliverySeriesParams:
    """Stored counts of buckets starting in [`since`, `until`) ms, of one channel (None:
    every channel)."""

    since: int
    until: int
    channel: str | None = None


# API keys ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ApiKeyInsertParams:
    """A new key: its id, unique active name, token hash, grants (JSON text) and the
    stored form of its SigV4 secret (the token, or sealed: `conveyor.sealing`)."""

    key_id: str
    name: str
    token_hash: str
    grants: str
    now: int | None
    secret: str | None = None


# worker heartbeats ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WorkerPutParams:
    """A worker's heartbeat to store: kept until now + `ttl_ms`. `queues` and `detail`
    (its schedules and per-task counts) are JSON text; the first beat sets `started_at`."""

    worker_id: str
    host: str
    pid: int
    queues: str
    concurrency: int
    running: int
    detail: str
    ttl_ms: int
    now: int | None


class FlowNodeRow(NamedTuple):
    """A flow's node to store: a queued node's message is sent with it, a waiting one keeps
    its message `body` until released (`storage.flow_steps`)."""

    node: int
    job_id: str
    task: str
    queue_id: int
    queue: str
    body: str
    priority: int
    results: str
    on_failure: str
    state: str  # "queued" or "waiting"
    pending: int  # how many nodes it waits for
    parents: str  # the nodes that wait for it, as a JSON array


@dataclass(frozen=True, slots=True)
class FlowInsertParams:
    """A whole flow in one transaction: its nodes, its edges `(child, parent)` (the parent
    waits for the child), and the messages of the nodes that wait for nothing, by queue id."""

    flow_id: str
    nodes: Sequence[FlowNodeRow]
    edges: Sequence[tuple[int, int]]
    ready: Sequence[tuple[int, NewMessages]]
    keep_ms: int
    now: int | None


class FlowEnd(NamedTuple):
    """A flow node that ended: succeeded (`ok`, its result as JSON text) or failed."""

    flow_id: str
    node: int
    ok: bool
    result: str | None = None
    error: str | None = None
# digests ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DigestAddParams:
    """One event for a recipient's digest `key`: joins the open digest, or opens
    `digest_id` (collecting for `window_ms`); `data` and `targets` are JSON text."""

    digest_id: str
    recipient_id: str
    key: str
    category: str
    template: str
    window_ms: int
    event_id: str
    data: str
    targets: str
    now: int | None


@dataclass(frozen=True, slots=True)
class HoldRow:
    """A queue message held for a recipient's quiet hours until `release_at` (ms)."""

    recipient_id: str
    queue_id: int
    message_id: str
    release_at: int
