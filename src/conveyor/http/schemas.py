"""Request and response shapes of the native API, as pydantic models for `/openapi.json`.

Requests are parsed with these models for their *shape* (types, required fields); ranges
and cross-field rules are the broker's (`conveyor.broker.validation`), so every protocol
edge answers with the same error codes. Bounds appear here only as documentation.
Responses are encoded directly with orjson (see `wire.py`); the response models document
them. All `*_at` fields are milliseconds since the Unix epoch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.broker import validation as v


def _bounds(low: int, high: int, description: str) -> Any:
    """Document a range without enforcing it here (the broker enforces it)."""
    return Field(default=None, description=description,
                 json_schema_extra={"minimum": low, "maximum": high})


class _In(BaseModel):
    # strict: JSON true is not 1 and "30" is not 30 (nor 1 true): a wrong type is a 422
    # `invalid_input` naming the field, and nothing is applied.
    model_config = ConfigDict(extra="forbid", strict=True)


# queues -----------------------------------------------------------------------------
class QueueAttributesIn(BaseModel):
    """Queue attributes to set; omitted ones keep their value (defaults on create).

    Unknown names pass through to the broker, which rejects them (`invalid_attribute`).
    """

    model_config = ConfigDict(extra="allow", strict=True)  # true is not 1 (see _In)

    visibility_timeout: int | None = _bounds(0, v.MAX_VISIBILITY, "Lease length, seconds.")
    delay_seconds: int | None = _bounds(0, v.MAX_DELAY_SQS, "Default delay, seconds.")
    receive_wait_seconds: int | None = _bounds(0, v.MAX_WAIT, "Default long-poll wait.")
    retention_seconds: int | None = _bounds(v.MIN_RETENTION, v.MAX_RETENTION,
                                            "How long a message is kept, seconds.")
    max_message_bytes: int | None = _bounds(v.MIN_MESSAGE_BYTES, v.MAX_MESSAGE_BYTES,
                                            "Largest body plus attributes, bytes.")
    max_receive_count: int | None = _bounds(
        1, v.MAX_RECEIVE_COUNT, "Deliveries before dead-lettering; set with dead_letter_queue.")
    dead_letter_queue: str | None = Field(default=None, description="Name of the DLQ.")
    paused: bool | None = Field(default=None, description="A paused queue accepts sends "
                                                          "and returns nothing on receive.")
    fifo: bool | None = Field(default=None, description="Set at creation; name ends .fifo.")
    content_based_deduplication: bool | None = None
    durability: Literal["logged", "unlogged"] | None = Field(
        default=None, description="`unlogged` (PostgreSQL only): fire-and-forget speed.")
    tags: dict[str, str] | None = None
    redrive_allow_policy: str | None = Field(default=None, description="SQS endpoint's.")
    deduplication_scope: Literal["queue", "messageGroup"] | None = None
    fifo_throughput_limit: Literal["perQueue", "perMessageGroupId"] | None = None
    policy: str | None = Field(default=None, description="SQS endpoint's access policy.")
    kms_master_key_id: str | None = Field(default=None, description="Stored, not used: "
                                          "encryption at rest is the database's.")
    kms_data_key_reuse_period_seconds: int | None = _bounds(60, 86_400, "Stored, not used.")
    sqs_managed_sse_enabled: bool | None = Field(default=None, description="Stored, not used.")


class CreateQueueRequest(_In):
    """Create a queue (or get it back when it exists with the same attributes)."""

    name: str = Field(description="1-80 of [A-Za-z0-9_-]; FIFO names end in .fifo.")
    attributes: QueueAttributesIn | None = None


class UpdateQueueRequest(_In):
    """Change some attributes of a queue."""

    attributes: QueueAttributesIn


class QueueAttributesOut(BaseModel):
    """Every attribute of a queue."""

    visibility_timeout: int
    delay_seconds: int
    receive_wait_seconds: int
    retention_seconds: int
    max_message_bytes: int
    max_receive_count: int | None
    dead_letter_queue: str | None
    paused: bool
    fifo: bool
    content_based_deduplication: bool
    durability: Literal["logged", "unlogged"]
    tags: dict[str, str]
    redrive_allow_policy: str | None
    deduplication_scope: Literal["queue", "messageGroup"]
    fifo_throughput_limit: Literal["perQueue", "perMessageGroupId"]
    policy: str | None = None
    kms_master_key_id: str | None = None
    kms_data_key_reuse_period_seconds: int | None = None
    sqs_managed_sse_enabled: bool | None = None


class QueueStatsOut(BaseModel):
    """Message counts of a queue."""

    visible: int
    in_flight: int
    delayed: int
    oldest_age_seconds: float | None
    dead_letters: int


class QueueOut(BaseModel):
    """A queue, its attributes and its counts."""

    name: str
    region: str
    attributes: QueueAttributesOut
    stats: QueueStatsOut
    created_at: int
    updated_at: int


class QueueList(BaseModel):
    """Queues by name; their counts may be a few seconds old."""

    queues: list[QueueOut]


class PurgeResult(BaseModel):
    """How many messages a purge deleted."""

    purged: int


# messages ---------------------------------------------------------------------------
class AttributeIn(_In):
    """A typed message attribute; Binary values are base64."""

    type: str = Field(description="String, Number or Binary (optionally with a .suffix).")
    value: str | int | float = Field(description="Text; a number for Number; base64 "
                                                 "for Binary.")


class ClaimIn(_In):
    """A key the message holds for `seconds` (unique and debounced jobs)."""

    key: str = Field(description="1-512 characters.")
    seconds: int = Field(description="How long the key is held, 1 s to 366 days (never "
                                     "less than the message's delay).")
    replace: bool = Field(
        default=False,
        description="false (unique): while the key is held, a send stores nothing and "
                    "answers the holder's id with duplicate true. true (debounce): a held "
                    "message still delayed and never received takes this one's body, "
                    "attributes, priority and delay (same id, duplicate true); otherwise "
                    "this one is stored and takes the key.")


class SendMessageIn(_In):
    """One message to send."""

    body: Any = Field(description="Any JSON value; a string is stored as text, anything "
                                  "else as JSON, and comes back the same.")
    delay_seconds: int | None = Field(
        default=None, description="Seconds before it is visible (up to the retention).")
    attributes: dict[str, AttributeIn] | None = Field(
        default=None, description=f"Up to {v.MAX_ATTRIBUTES} typed attributes.")
    priority: int = Field(default=0, description="0-9, higher first.",
                          json_schema_extra={"minimum": 0, "maximum": v.MAX_PRIORITY})
    deduplication_id: str | None = Field(
        default=None, description="A repeat within 5 minutes returns the first id.")
    group_id: str | None = None
    claim: ClaimIn | None = Field(
        default=None, description="Unique or debounced: a key this message holds.")


class SendRequest(_In):
    """A batch sent all-or-nothing; an error names the bad entry's index."""

    messages: list[SendMessageIn] = Field(
        description=f"1 to {v.MAX_BATCH} messages.")


class SentMessage(BaseModel):
    """The id of a sent message; `duplicate` when a deduplication id matched."""

    id: str
    duplicate: bool


class SendResponse(BaseModel):
    """Ids in the order the messages were sent."""

    messages: list[SentMessage]


class ReceiveRequest(_In):
    """Lease up to `max_messages` messages."""

    max_messages: int = Field(default=10, description=f"1-{v.MAX_BATCH}.",
                              json_schema_extra={"minimum": 1, "maximum": v.MAX_BATCH})
    visibility_timeout: int | None = _bounds(0, v.MAX_VISIBILITY,
                                             "Lease length (the queue's by default).")
    wait_seconds: int | None = _bounds(
        0, v.MAX_WAIT, "Long poll: return as soon as a message arrives, or after this.")
    skip_groups: list[str] = Field(default_factory=list, description=(
        "Standard queues: pass over the messages of these message groups (up to "
        f"{v.MAX_SKIP_GROUPS:,}): a worker's per-key limited jobs whose keys are full."))


class AttributeOut(BaseModel):
    """A typed message attribute; Binary values are base64."""

    type: str
    value: str


class ReceivedMessage(BaseModel):
    """A message under a lease; delete it with its receipt handle."""

    id: str
    body: Any
    attributes: dict[str, AttributeOut]
    receipt_handle: str
    receive_count: int
    sent_at: int
    first_received_at: int
    lease_until: int
    priority: int
    group_id: str | None
    deduplication_id: str | None
    last_error: str | None


class ReceiveResponse(BaseModel):
    """The leased messages (empty when none arrived in time)."""

    messages: list[ReceivedMessage]


class DeleteRequest(_In):
    """Acknowledge messages by receipt handle."""

    receipt_handles: list[str] = Field(description=f"1 to {v.MAX_BATCH} handles.")


class VisibilityEntryIn(_In):
    """A new lease length for one received message; 0 releases it now (a nack)."""

    receipt_handle: str
    visibility_timeout: int = Field(json_schema_extra={"minimum": 0,
                                                       "maximum": v.MAX_VISIBILITY})


class VisibilityRequest(_In):
    """Extend or release leases."""

    entries: list[VisibilityEntryIn] = Field(description=f"1 to {v.MAX_BATCH} entries.")


class RetryRequest(_In):
    """End a lease and redeliver later, keeping the receive count and recording the error."""

    receipt_handle: str
    delay_seconds: int = Field(default=0, description="Up to the queue's retention.")
    error: str | None = Field(default=None, description="Why it failed (kept, 4000 chars).")
    dead_letter: bool = Field(default=False, description=(
        "Move it to the queue's dead-letter queue now (its source kept for redrive)."))
    snooze: bool = Field(default=False, description=(
        "Give back the receive that leased it: the receive count goes down by one (a "
        "job that snoozes spends no attempt)."))


class EntryResultOut(BaseModel):
    """One entry's outcome: `ok`, `stale` (received again or gone) or `invalid`."""

    receipt_handle: str
    status: Literal["ok", "stale", "invalid"]
    message: str | None = None


class BatchResults(BaseModel):
    """Per-entry outcomes, in request order."""

    results: list[EntryResultOut]


class PeekedMessageOut(BaseModel):
    """A message looked at without leasing it."""

    id: str
    body: Any
    attributes: dict[str, AttributeOut]
    receive_count: int
    sent_at: int
    visible_at: int
    priority: int
    group_id: str | None
    deduplication_id: str | None
    last_error: str | None
    source_queue: str | None


class PeekResponse(BaseModel):
    """Messages oldest first; pass the last id as `after` for the next page."""

    messages: list[PeekedMessageOut]


# redrive ----------------------------------------------------------------------------
class RedriveRequest(_In):
    """Move a dead-letter queue's messages back to their sources (or to `destination`)."""

    destination: str | None = None
    max_per_second: int | None = _bounds(1, 500, "Throttle the move.")


class MoveTaskOut(BaseModel):
    """A redrive task; poll it until `status` is not `running`."""

    id: str
    source_queue: str
    destination_queue: str | None
    status: Literal["running", "completed", "cancelled", "failed"]
    moved: int
    to_move: int
    max_per_second: int | None
    started_at: int
    finished_at: int | None
    error: str | None
    updated_at: int | None = Field(None, description="When its runner last saved "
                                   "progress (ms); a running task whose runner stopped "
                                   "(its server exited) fails after a minute without one.")


class MoveTaskList(BaseModel):
    """Tasks of a queue, newest first."""

    tasks: list[MoveTaskOut]


# health and errors ------------------------------------------------------------------
class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"]


class Ready(BaseModel):
    """Storage answers and its schema is current."""

    status: Literal["ready", "not_ready"]
    schema_version: int | None
    known_version: int | None
    reason: str | None = None
    """Set when not ready for want of file handles: `too_many_connections` (at the
    connection cap) or `too_many_open_files` (accept() failed)."""


class ErrorDetail(BaseModel):
    """What went wrong: a machine-readable code and a sentence."""

    code: str
    message: str
    index: int | None = Field(default=None, description="The bad entry of a batch.")
    field: str | None = Field(default=None, description="The bad field.")


class ErrorOut(BaseModel):
    """Every error response has this shape."""

    error: ErrorDetail
