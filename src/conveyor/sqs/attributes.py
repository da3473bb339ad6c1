"""SQS message attributes and message system attributes: read from the wire with AWS's
checks and texts, selected on receive (`All`, `.*`, `prefix.*`), written back.

Queue attributes are `conveyor.sqs.queue_attributes`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any

from conveyor.broker.validation import TRACE_HEADER_ATTRIBUTE
from conveyor.models import Message, MessageAttribute
from conveyor.sqs.texts import fail

SYSTEM_ATTRIBUTES = ("SenderId", "SentTimestamp", "ApproximateReceiveCount",
                     "ApproximateFirstReceiveTimestamp", "SequenceNumber",
                     "MessageDeduplicationId", "MessageGroupId", "AWSTraceHeader",
                     "DeadLetterQueueSourceArn")
MAX_ATTRIBUTES = 10
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_TYPE = re.compile(r"(String|Number|Binary)(\..{1,250})?", re.DOTALL)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_FORBIDDEN = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# message attributes --------------------------------------------------------------------
def parse_message_attributes(raw: Mapping[str, Any]) -> dict[str, MessageAttribute]:
    """Wire `{Name: {DataType, StringValue | BinaryValue}}` -> MessageAttribute values,
    checked as SQS checks them."""
    if len(raw) > MAX_ATTRIBUTES:
        raise fail("attribute_count", count=len(raw))
    out: dict[str, MessageAttribute] = {}
    for name, item in raw.items():
        if not _NAME.fullmatch(name):
            raise fail("attribute_name")
        if name.lower().startswith(("aws.", "amazon.")) or name.startswith(".") or \
                name.endswith(".") or ".." in name:
            raise fail("attribute_reserved")
        out[name] = _attribute(name, item)
    return out


def _attribute(name: str, item: Any) -> MessageAttribute:
    data_type = item.get("DataType") if isinstance(item, Mapping) else None
    if not isinstance(data_type, str) or not data_type:
        raise fail("attribute_missing_type", name=name)
    if not _TYPE.fullmatch(data_type):
        raise fail("attribute_type", name=name)
    if data_type.split(".", 1)[0] == "Binary":
        return MessageAttribute(data_type, _binary(name, item.get("BinaryValue")))
    value = item.get("StringValue")
    if not isinstance(value, str) or not value:
        raise fail("attribute_empty", name=name, type=data_type.split(".", 1)[0])
    if data_type.split(".", 1)[0] == "Number" and not _NUMBER.fullmatch(value.strip()):
        raise fail("attribute_number", name=name)
    if _FORBIDDEN.search(value):
        raise fail("attribute_characters", name=name)
    return MessageAttribute(data_type, value)


def _binary(name: str, value: Any) -> bytes:
    if isinstance(value, bytes) and value:
        return value
    if not isinstance(value, str) or not value:
        raise fail("attribute_binary", name=name)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise fail("attribute_binary", name=name) from None


def parse_system_attributes(raw: Mapping[str, Any]) -> dict[str, MessageAttribute]:
    """MessageSystemAttributes: only AWSTraceHeader, a String."""
    out: dict[str, MessageAttribute] = {}
    for name, item in raw.items():
        if name != "AWSTraceHeader":
            raise fail("system_attribute", name=name)
        attribute = _attribute(name, item)
        if attribute.type != "String":
            raise fail("trace_header_type")
        out[name] = attribute
    return out


def attributes_size(attributes: Mapping[str, MessageAttribute]) -> int:
    """The bytes attributes add to a message's size (names, types and values)."""
    return sum(len(k.encode()) + len(a.type.encode()) + len(
        a.value if isinstance(a.value, bytes) else a.value.encode())
        for k, a in attributes.items())


def with_trace_header(attributes: Mapping[str, MessageAttribute],
                      system: Mapping[str, MessageAttribute]) -> dict[str, MessageAttribute]:
    """The attributes to store: the user's, plus the trace header under its reserved name."""
    out = dict(attributes)
    trace = system.get("AWSTraceHeader")
    if trace is not None:
        out[TRACE_HEADER_ATTRIBUTE] = trace
    return out


def split_trace_header(attributes: Mapping[str, MessageAttribute]
                       ) -> tuple[dict[str, MessageAttribute], str | None]:
    """Stored attributes -> (the user's, the trace header if any)."""
    trace = attributes.get(TRACE_HEADER_ATTRIBUTE)
    if trace is None:
        return dict(attributes), None
    user = {k: v for k, v in attributes.items() if k != TRACE_HEADER_ATTRIBUTE}
    return user, trace.value if isinstance(trace.value, str) else None


def select_message_attributes(attributes: Mapping[str, MessageAttribute],
                              names: list[str]) -> dict[str, MessageAttribute]:
    """The attributes a receive asked for: `All`, `.*`, `prefix.*` or exact names."""
    if not names or not attributes:
        return {}
    if "All" in names or ".*" in names or "*" in names:
        return dict(attributes)
    prefixes = _prefixes(names)
    wanted = set(names)
    return {k: v for k, v in attributes.items()
            if k in wanted or (prefixes and k.startswith(prefixes))}


def _prefixes(names: Iterable[str]) -> tuple[str, ...]:
    """What `prefix.*` names ask for: every name starting with `prefix`, as on SQS
    ("Hel.*" returns "Hello" and "Help.Me"; recorded from AWS by LocalStack's suite)."""
    return tuple(n[:-2] for n in names if n.endswith(".*"))


def system_names(asked: Iterable[str]) -> tuple[str, ...]:
    """The system attributes a receive asked for (`All`, `.*`, `prefix.*` or names)."""
    names = list(asked)
    if {"All", ".*", "*"} & set(names):
        return SYSTEM_ATTRIBUTES
    prefixes = _prefixes(names)
    return tuple(n for n in SYSTEM_ATTRIBUTES
                 if n in names or (prefixes and n.startswith(prefixes)))


def message_attributes_out(attributes: Mapping[str, MessageAttribute]) -> dict[str, Any]:
    """The wire shape of message attributes (binary values as bytes, encoded on render)."""
    out: dict[str, Any] = {}
    for name, attribute in attributes.items():
        if isinstance(attribute.value, bytes):
            out[name] = {"BinaryValue": attribute.value, "DataType": attribute.type}
        else:
            out[name] = {"StringValue": attribute.value, "DataType": attribute.type}
    return out


def system_attributes(message: Message, names: tuple[str, ...], sender_id: str,
                      trace_header: str | None = None,
                      source_arn: str | None = None) -> dict[str, str]:
    """The message system attributes asked for that the message has."""
    values: dict[str, str | None] = {
        "AWSTraceHeader": trace_header,
        "DeadLetterQueueSourceArn": source_arn,
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
