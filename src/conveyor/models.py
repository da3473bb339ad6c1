"""Pure data: queues, messages and the results of broker operations.

Times are integers, milliseconds since the Unix epoch, everywhere below the protocol
edges; durations given by users are seconds.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

import orjson

Durability = Literal["logged", "unlogged"]
DeduplicationScope = Literal["queue", "messageGroup"]
FifoThroughputLimit = Literal["perQueue", "perMessageGroupId"]


class BodyKind(IntEnum):
    """How a body was sent, so that receive gives back exactly the same kind."""

    TEXT = 0
    JSON = 1


@dataclass(slots=True)  # not frozen: made per message on the hot path (5x cheaper)
class Body:
    """A message body: its stored text and whether that text is a JSON document."""

    text: str
    kind: BodyKind = BodyKind.TEXT

    @classmethod
    def of(cls, value: Any) -> Body:
        """Wrap a Python value: a `str` stays text, anything else is encoded as JSON."""
        if isinstance(value, str):
            return cls(value, BodyKind.TEXT)
        return cls(dumps_json(value), BodyKind.JSON)

    def value(self) -> Any:
        """The Python value that was sent: the text itself, or the decoded JSON."""
        if self.kind is BodyKind.JSON:
            return orjson.loads(self.text)
        return self.text


def dumps_json(value: Any) -> str:
    """Encode a JSON value compactly; integers beyond 64 bits fall back to the stdlib."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        import json

        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


AttributeType = Literal["String", "Number", "Binary"]


@dataclass(frozen=True, slots=True)
class MessageAttribute:
    """A typed message attribute; `type` may carry an SQS custom suffix (`Number.int`)."""

    type: str
    value: str | bytes

    @property
    def base_type(self) -> AttributeType:
        """`String`, `Number` or `Binary`, without any custom suffix."""
        base = self.type.split(".", 1)[0]
        assert base in ("String", "Number", "Binary")
        return base  # type: ignore[return-value]

    def to_json(self) -> dict[str, str]:
        """The wire form: Binary values as base64."""
        if isinstance(self.value, bytes):
            return {"type": self.type, "value": base64.b64encode(self.value).decode()}
        return {"type": self.type, "value": self.value}


MessageAttributes = Mapping[str, MessageAttribute]


def encode_attributes(attributes: MessageAttributes) -> str | None:
    """Serialise attributes for storage (None when there are none)."""
    if not attributes:
        return None
    return dumps_json({k: v.to_json() for k, v in attributes.items()})


def decode_attributes(text: str | None) -> dict[str, MessageAttribute]:
    """Inverse of `encode_attributes`."""
    if not text:
        return {}
    out: dict[str, MessageAttribute] = {}
    for name, item in orjson.loads(text).items():
        value: str | bytes = item["value"]
        if item["type"].split(".", 1)[0] == "Binary":
            value = base64.b64decode(item["value"])
        out[name] = MessageAttribute(item["type"], value)
    return out


@dataclass(frozen=True, slots=True)
class QueueAttributes:
    """Everything a user can configure on a queue; defaults follow SQS."""

    visibility_timeout: int = 30
    delay_seconds: int = 0
    receive_wait_seconds: int = 0
    retention_seconds: int = 345_600
    max_message_bytes: int = 1_048_576
    max_receive_count: int | None = None
    dead_letter_queue: str | None = None
    paused: bool = False
    fifo: bool = False
    content_based_deduplication: bool = False
    durability: Durability = "logged"
    tags: Mapping[str, str] = field(default_factory=dict)
    # Kept for the SQS endpoint, which reads and enforces them; the core only stores them.
    redrive_allow_policy: str | None = None
    deduplication_scope: DeduplicationScope = "queue"
    fifo_throughput_limit: FifoThroughputLimit = "perQueue"
    # What infrastructure tools set through the SQS endpoint: an access policy (JSON text)
    # and the encryption settings. Stored and returned; encryption at rest is the database's.
    policy: str | None = None
    kms_master_key_id: str | None = None
    kms_data_key_reuse_period_seconds: int | None = None
    sqs_managed_sse_enabled: bool | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueueAttributes:
        """Read attributes back from their stored JSON (already validated)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form, as stored and as the native API shows it."""
        return {
            "visibility_timeout": self.visibility_timeout,
            "delay_seconds": self.delay_seconds,
            "receive_wait_seconds": self.receive_wait_seconds,
            "retention_seconds": self.retention_seconds,
            "max_message_bytes": self.max_message_bytes,
            "max_receive_count": self.max_receive_count,
            "dead_letter_queue": self.dead_letter_queue,
            "paused": self.paused,
            "fifo": self.fifo,
            "content_based_deduplication": self.content_based_deduplication,
            "durability": self.durability,
            "tags": dict(self.tags),
            "redrive_allow_policy": self.redrive_allow_policy,
            "deduplication_scope": self.deduplication_scope,
            "fifo_throughput_limit": self.fifo_throughput_limit,
            "policy": self.policy,
            "kms_master_key_id": self.kms_master_key_id,
            "kms_data_key_reuse_period_seconds": self.kms_data_key_reuse_period_seconds,
            "sqs_managed_sse_enabled": self.sqs_managed_sse_enabled,
        }


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue as stored: identity, attributes and timestamps (ms)."""

    id: int
    region: str
    name: str
    attributes: QueueAttributes
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts for one queue at one moment."""

    visible: int = 0
    in_flight: int = 0
    delayed: int = 0
    oldest_age_seconds: float | None = None
    dead_letters: int = 0

    @property
    def total(self) -> int:
        """Every message the queue holds."""
        return self.visible + self.in_flight + self.delayed

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "visible": self.visible,
            "in_flight": self.in_flight,
            "delayed": self.delayed,
            "oldest_age_seconds": self.oldest_age_seconds,
            "dead_letters": self.dead_letters,
        }


@dataclass(frozen=True, slots=True)
class TableHealth:
    """How big one of conveyor's tables is and how much of it is dead weight.

    PostgreSQL: a row per table, live and dead rows from the server's statistics, bytes
    with indexes and TOAST (no free-space figure: that takes a scan). SQLite: `database`
    (the file, and the bytes of its free pages, which later writes reuse) and `wal`."""

    table: str
    live_rows: int | None
    dead_rows: int
    bytes: int
    free_bytes: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotHold:
    """The oldest open snapshot that keeps conveyor's dead weight from being reclaimed.

    PostgreSQL: a `transaction` or `prepared transaction` in this database, or a
    `replication slot`, holding the xmin horizon back (VACUUM cannot remove rows deleted
    after it began); `seconds` since it began (None for a slot), `pid` and `application`
    (the slot's or prepared transaction's name) where the server tells them. SQLite: a
    `reader` whose snapshot keeps the WAL from being checkpointed and restarted (the WAL
    grows with every write until it ends); `seconds` since this process first saw the WAL
    held back, `pid` where the lock table tells it."""

    kind: str
    seconds: float | None
    pid: int | None = None
    application: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """A key a message holds for `seconds` (unique and debounced jobs).

    `replace=False` (unique): while a live claim holds the key, a send with it stores
    nothing and returns the holder's id (`duplicate`). `replace=True` (debounce): a send
    whose key is held by a message not yet received and still delayed replaces that
    message's body, attributes and priority and delays it again (returning its id,
    `duplicate`); otherwise the new message is stored and takes the key.
    """

    key: str
    seconds: int
    replace: bool = False


@dataclass(frozen=True, slots=True)
class SendEntry:
    """One message a producer asks to send."""

    body: Body
    delay_seconds: int | None = None
    attributes: MessageAttributes = field(default_factory=dict)
    priority: int = 0
    deduplication_id: str | None = None
    group_id: str | None = None
    claim: Claim | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The id of a sent message; `duplicate` when a deduplication id matched an earlier send."""

    id: str
    duplicate: bool = False
    sequence_number: str | None = None


@dataclass(slots=True)  # not frozen: made per message on the hot path (5x cheaper)
class Message:
    """A message handed to a consumer under a lease."""

    id: str
    queue: str
    body: Body
    attributes: Mapping[str, MessageAttribute]
    receipt_handle: str
    receive_count: int
    sent_at: int
    first_received_at: int
    lease_until: int
    priority: int = 0
    group_id: str | None = None
    deduplication_id: str | None = None
    last_error: str | None = None
    sequence_number: str | None = None


@dataclass(frozen=True, slots=True)
class PeekedMessage:
    """A message looked at without leasing it (dashboard, export)."""

    id: str
    body: Body
    attributes: Mapping[str, MessageAttribute]
    receive_count: int
    sent_at: int
    visible_at: int
    priority: int
    group_id: str | None
    deduplication_id: str | None
    last_error: str | None
    source_queue: str | None


EntryStatus = Literal["ok", "stale", "invalid"]


@dataclass(slots=True)  # not frozen: made per message on the hot path (5x cheaper)
class EntryResult:
    """Outcome of one entry of a delete or visibility batch."""

    receipt_handle: str
    status: EntryStatus
    message: str | None = None

    @property
    def ok(self) -> bool:
        """True when the entry took effect."""
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class VisibilityEntry:
    """Extend (or with 0, release) the lease of a received message."""

    receipt_handle: str
    visibility_timeout: int


MoveTaskStatus = Literal["running", "completed", "cancelled", "failed"]


@dataclass(frozen=True, slots=True)
class MoveTask:
    """A redrive: messages moved from a dead-letter queue back to their sources."""

    id: str
    source_queue: str
    destination_queue: str | None
    status: MoveTaskStatus
    moved: int
    to_move: int
    max_per_second: int | None
    started_at: int
    finished_at: int | None
    error: str | None = None
    updated_at: int | None = None  # (ms) its runner's last save; None: stored before it

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "id": self.id,
            "source_queue": self.source_queue,
            "destination_queue": self.destination_queue,
            "status": self.status,
            "moved": self.moved,
            "to_move": self.to_move,
            "max_per_second": self.max_per_second,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "updated_at": self.updated_at,
        }
