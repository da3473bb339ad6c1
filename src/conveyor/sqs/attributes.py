"""SQS attribute names and values <-> conveyor's queue attributes and message attributes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from conveyor.models import Message, MessageAttribute, Queue, QueueStats
from conveyor.sqs.context import Context
from conveyor.sqs.errors import (
    INVALID_ATTRIBUTE_NAME,
    INVALID_ATTRIBUTE_VALUE,
    SqsError,
    invalid,
)

# SQS queue attribute -> QueueAttributes field, for values passed through as they are.
SETTABLE = {
    "VisibilityTimeout": "visibility_timeout",
    "DelaySeconds": "delay_seconds",
    "MessageRetentionPeriod": "retention_seconds",
    "MaximumMessageSize": "max_message_bytes",
    "ReceiveMessageWaitTimeSeconds": "receive_wait_seconds",
    "FifoQueue": "fifo",
    "ContentBasedDeduplication": "content_based_deduplication",
    "DeduplicationScope": "deduplication_scope",
    "FifoThroughputLimit": "fifo_throughput_limit",
}
_FIFO_ONLY = ("FifoQueue", "ContentBasedDeduplication", "DeduplicationScope",
              "FifoThroughputLimit")
_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
           "ApproximateNumberOfMessagesDelayed")
READABLE = (*SETTABLE, "RedrivePolicy", "RedriveAllowPolicy", *_COUNTS, "CreatedTimestamp",
            "LastModifiedTimestamp", "QueueArn")
# Valid SQS attributes this endpoint does not keep (access policies, KMS encryption).
UNSUPPORTED = ("Policy", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
               "SqsManagedSseEnabled")
_PERMISSIONS = ("allowAll", "denyAll", "byQueue")
SYSTEM_ATTRIBUTES = ("SenderId", "SentTimestamp", "ApproximateReceiveCount",
                     "ApproximateFirstReceiveTimestamp", "SequenceNumber",
                     "MessageDeduplicationId", "MessageGroupId", "AWSTraceHeader",
                     "DeadLetterQueueSourceArn")


def _bad_value(message: str) -> SqsError:
    return SqsError(INVALID_ATTRIBUTE_VALUE, message)


def to_broker(ctx: Context, given: Mapping[str, str]) -> dict[str, Any]:
    """SQS queue attributes (all values strings) -> the broker's attribute dict."""
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name in SETTABLE:
            out[SETTABLE[name]] = value
        elif name == "RedrivePolicy":
            out.update(_redrive_policy(ctx, value))
        elif name == "RedriveAllowPolicy":
            out["redrive_allow_policy"] = _redrive_allow_policy(ctx, value)
        elif name in UNSUPPORTED:
            raise SqsError(INVALID_ATTRIBUTE_NAME,
                           f"The attribute {name} is not supported by this endpoint.")
        else:
            raise SqsError(INVALID_ATTRIBUTE_NAME,
                           f"Unknown or read-only attribute {name[:100]}.")
    return out


def _json_object(name: str, value: str) -> dict[str, Any]:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _bad_value(f"Invalid value for the parameter {name}: not JSON.") from None
    if not isinstance(data, dict):
        raise _bad_value(f"Invalid value for the parameter {name}: not a JSON object.")
    return data


def _redrive_policy(ctx: Context, value: str) -> dict[str, Any]:
    if not value:
        return {"dead_letter_queue": None, "max_receive_count": None}
    data = _json_object("RedrivePolicy", value)
    arn, count = data.get("deadLetterTargetArn"), data.get("maxReceiveCount")
    if not isinstance(arn, str) or count is None:
        raise _bad_value("Value for parameter RedrivePolicy is invalid. Reason: Redrive "
                         "policy needs deadLetterTargetArn and maxReceiveCount.")
    region, name = _arn_name(ctx, arn, "RedrivePolicy")
    if region != ctx.region:
        raise _bad_value("A dead-letter queue must be in the same region as its source.")
    return {"dead_letter_queue": name, "max_receive_count": count}


def _arn_name(ctx: Context, arn: str, member: str) -> tuple[str, str]:
    try:
        return ctx.name_from_arn(arn, member)
    except SqsError as exc:
        raise _bad_value(exc.message) from None


def _redrive_allow_policy(ctx: Context, value: str) -> str | None:
    if not value:
        return None
    data = _json_object("RedriveAllowPolicy", value)
    permission = data.get("redrivePermission")
    sources = data.get("sourceQueueArns")
    if permission not in _PERMISSIONS:
        raise _bad_value("RedriveAllowPolicy.redrivePermission must be allowAll, denyAll or "
                         "byQueue.")
    if permission == "byQueue":
        if not isinstance(sources, list) or not 1 <= len(sources) <= 10 or \
                not all(isinstance(s, str) for s in sources):
            raise _bad_value("RedriveAllowPolicy with byQueue needs 1 to 10 sourceQueueArns.")
        for arn in sources:
            _arn_name(ctx, arn, "RedriveAllowPolicy")
        return orjson.dumps({"redrivePermission": permission,
                             "sourceQueueArns": sources}).decode()
    if sources:
        raise _bad_value("sourceQueueArns is only allowed with byQueue.")
    return orjson.dumps({"redrivePermission": permission}).decode()


def redrive_allowed(dead_letter_queue: Queue, source_arn: str) -> bool:
    """Whether a dead-letter queue's RedriveAllowPolicy lets `source_arn` use it."""
    policy = dead_letter_queue.attributes.redrive_allow_policy
    if not policy:
        return True
    data = orjson.loads(policy)
    permission = data.get("redrivePermission")
    if permission == "denyAll":
        return False
    if permission == "byQueue":
        return source_arn in data.get("sourceQueueArns", [])
    return True


def requested(names: Iterable[str], known: tuple[str, ...], what: str) -> tuple[str, ...]:
    """The attribute names to answer with: `All` means every one; unknown names fail."""
    names = list(names)
    if "All" in names:
        return known
    for name in names:
        if name not in known and name not in UNSUPPORTED:
            raise SqsError(INVALID_ATTRIBUTE_NAME, f"Unknown {what} {name[:100]}.")
    return tuple(n for n in names if n in known)


def needs_stats(names: Iterable[str]) -> bool:
    """Whether answering these names needs the queue's message counts."""
    return any(n in _COUNTS for n in names)


def from_queue(ctx: Context, queue: Queue, names: Iterable[str],
               stats: QueueStats | None) -> dict[str, str]:
    """GetQueueAttributes values (all strings), for the names asked that apply."""
    attrs = queue.attributes
    values: dict[str, str | None] = {
        "VisibilityTimeout": str(attrs.visibility_timeout),
        "DelaySeconds": str(attrs.delay_seconds),
        "MessageRetentionPeriod": str(attrs.retention_seconds),
        "MaximumMessageSize": str(attrs.max_message_bytes),
        "ReceiveMessageWaitTimeSeconds": str(attrs.receive_wait_seconds),
        "CreatedTimestamp": str(queue.created_at // 1000),
        "LastModifiedTimestamp": str(queue.updated_at // 1000),
        "QueueArn": ctx.queue_arn(queue.name),
        "RedrivePolicy": None,
        "RedriveAllowPolicy": attrs.redrive_allow_policy,
    }
    if attrs.dead_letter_queue is not None:
        values["RedrivePolicy"] = orjson.dumps({
            "deadLetterTargetArn": ctx.queue_arn(attrs.dead_letter_queue),
            "maxReceiveCount": attrs.max_receive_count}).decode()
    if attrs.fifo:
        values["FifoQueue"] = "true"
        values["ContentBasedDeduplication"] = str(attrs.content_based_deduplication).lower()
        values["DeduplicationScope"] = attrs.deduplication_scope
        values["FifoThroughputLimit"] = attrs.fifo_throughput_limit
    if stats is not None:
        values["ApproximateNumberOfMessages"] = str(stats.visible)
        values["ApproximateNumberOfMessagesNotVisible"] = str(stats.in_flight)
        values["ApproximateNumberOfMessagesDelayed"] = str(stats.delayed)
    out: dict[str, str] = {}
    for name in names:
        value = values.get(name)
        if value is not None:
            out[name] = value
    return out


# message attributes --------------------------------------------------------------------
def parse_message_attributes(raw: Mapping[str, Any]) -> dict[str, MessageAttribute]:
    """Wire `{Name: {DataType, StringValue | BinaryValue}}` -> MessageAttribute values.

    Names, types and sizes are the broker's checks; this reads the wire shape.
    """
    out: dict[str, MessageAttribute] = {}
    for name, item in raw.items():
        if not isinstance(item, Mapping):
            raise invalid(f"The message attribute {name[:100]!r} is malformed.")
        data_type = item.get("DataType")
        if not isinstance(data_type, str) or not data_type:
            raise invalid(f"The message attribute '{name[:100]}' must contain non-empty "
                          "message attribute type.")
        if data_type.split(".", 1)[0] == "Binary":
            out[name] = MessageAttribute(data_type, _binary(name, item.get("BinaryValue")))
            continue
        value = item.get("StringValue")
        if not isinstance(value, str) or not value:
            raise invalid(f"The message attribute '{name[:100]}' must contain non-empty "
                          "message attribute value for message attribute type "
                          f"'{data_type[:100]}'.")
        out[name] = MessageAttribute(data_type, value)
    return out


def _binary(name: str, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str) or not value:
        raise invalid(f"The message attribute '{name[:100]}' with type 'Binary' must use "
                      "field 'Binary'.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"The binary value of message attribute '{name[:100]}' is not "
                      "valid base64.") from None


def select_message_attributes(attributes: Mapping[str, MessageAttribute],
                              names: list[str]) -> dict[str, MessageAttribute]:
    """The attributes a receive asked for: `All`, `.*`, `prefix.*` or exact names."""
    if not names or not attributes:
        return {}
    if "All" in names or ".*" in names:
        return dict(attributes)
    prefixes = tuple(n[:-1] for n in names if n.endswith(".*"))
    wanted = set(names)
    return {k: v for k, v in attributes.items()
            if k in wanted or (prefixes and k.startswith(prefixes))}


def message_attributes_out(attributes: Mapping[str, MessageAttribute]) -> dict[str, Any]:
    """The wire shape of message attributes (binary values as bytes, encoded on render)."""
    out: dict[str, Any] = {}
    for name, attribute in attributes.items():
        if isinstance(attribute.value, bytes):
            out[name] = {"BinaryValue": attribute.value, "DataType": attribute.type}
        else:
            out[name] = {"StringValue": attribute.value, "DataType": attribute.type}
    return out


def system_attributes(message: Message, names: tuple[str, ...],
                      sender_id: str) -> dict[str, str]:
    """The message system attributes asked for that the message has."""
    values: dict[str, str | None] = {
        "SenderId": sender_id,
        "SentTimestamp": str(message.sent_at),
        "ApproximateReceiveCount": str(message.receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.first_received_at),
        "MessageGroupId": message.group_id,
        "MessageDeduplicationId": message.deduplication_id,
        "SequenceNumber": message.sequence_number,
    }
    out: dict[str, str] = {}
    for name in names:
        value = values.get(name)
        if value is not None:
            out[name] = value
    return out
