"""Input rules, written once: every protocol edge and both storage dialects rely on them."""

from __future__ import annotations

import difflib
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from conveyor.broker.channels import QUEUE_PREFIX
from conveyor.digits import integer
from conveyor.errors import (
    EmptyBatch,
    InvalidAttribute,
    InvalidInput,
    InvalidMessage,
    InvalidQueueName,
    MessageTooLarge,
    MissingParameter,
    TooManyEntries,
)
from conveyor.flows import MAX_RESULT_BYTES
from conveyor.models import (
    Body,
    BodyKind,
    Claim,
    MessageAttribute,
    QueueAttributes,
    SendEntry,
    dumps_json,
)

QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
FIFO_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}\.fifo")
REGION = re.compile(r"[a-z0-9-]{1,32}")
# SQS's allowed characters: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF.
_FORBIDDEN_CHARS = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_ATTRIBUTE_TYPE = re.compile(r"(String|Number|Binary)(\.[A-Za-z0-9_.-]{1,200})?")
_TOKEN = re.compile(r"[\x21-\x7e]{1,128}")  # SQS dedup and group ids: printable ASCII
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

MAX_BATCH = 1000
MAX_ATTRIBUTES = 10
MAX_PRIORITY = 9
MAX_VISIBILITY = 43_200
MAX_WAIT = 20
MAX_DELAY_SQS = 900
MIN_RETENTION, MAX_RETENTION = 60, 1_209_600
MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES = 1_024, 1_048_576
MIN_KMS_REUSE, MAX_KMS_REUSE = 60, 86_400  # SQS's KmsDataKeyReusePeriodSeconds
MAX_RECEIVE_COUNT = 1000
MAX_TAGS = 50
# The SQS endpoint keeps a message's X-Ray trace header (the system attribute
# AWSTraceHeader) under this attribute name, which users cannot give (the `AWS.` prefix is
# reserved); like SQS, it counts towards neither the attribute count nor the size.
TRACE_HEADER_ATTRIBUTE = "AWS.TraceHeader"


def encode_result(value: Any, index: int) -> str:
    """A job's or flow step's result as JSON, refused when it is not JSON or too big."""
    try:
        result = dumps_json(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"result must be a JSON value: {exc}.", field="result",
                           index=index) from exc
    if len(result.encode()) > MAX_RESULT_BYTES:
        raise InvalidInput(f"result must encode to at most {MAX_RESULT_BYTES:,} bytes "
                           "of JSON.", field="result", index=index)
    return result


def check_message_id(value: Any, field: str) -> str:
    """A message id (a UUID) in its canonical form, or InvalidInput naming `field`."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"{field} must be a message id (a UUID), not {str(value)[:80]!r}.",
                           field=field) from None


def check_queue_name(name: Any) -> str:
    """Return the name if valid, else InvalidQueueName."""
    if not isinstance(name, str) or not (
            QUEUE_NAME.fullmatch(name) or FIFO_QUEUE_NAME.fullmatch(name)):
        shown = name[:100] if isinstance(name, str) else name
        raise InvalidQueueName(
            f"Queue name {shown!r} is invalid: use 1-80 letters, digits, '-' or '_' "
            "(FIFO queue names end in '.fifo').", field="name")
    return name


def check_new_queue_name(name: Any) -> str:
    """`check_queue_name` for a queue about to be created, which also refuses the bare
    `notify-`: it would be the queue of a channel with no name (`broker.channels`)."""
    checked = check_queue_name(name)
    if checked == QUEUE_PREFIX:
        raise InvalidQueueName(f"Queue name {checked!r} is invalid: a notification "
                               f"channel's queue is {QUEUE_PREFIX}<channel>, with a channel "
                               "name.", field="name")
    return checked


def check_region(region: Any) -> str:
    """Return the region if it looks like one (`us-east-1`)."""
    if not isinstance(region, str) or not REGION.fullmatch(region):
        raise InvalidAttribute(f"Region {region!r} is invalid.", field="region")
    return region


def _int_in(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and (number := integer(value, signed=True)) is not None:
            value = number
        else:
            raise InvalidAttribute(f"{name} must be an integer, not {value!r}.", field=name)
    if not low <= value <= high:
        raise InvalidAttribute(f"{name} must be between {low} and {high}, not {value}.",
                               field=name)
    return int(value)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidAttribute(f"{name} must be true or false, not {value!r}.", field=name)


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidAttribute("tags must be an object of strings.", field="tags")
    if len(value) > MAX_TAGS:
        raise InvalidAttribute(f"A queue has at most {MAX_TAGS} tags.", field="tags")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not isinstance(item, str) \
                or len(item) > 256:
            raise InvalidAttribute(
                "Tag keys are 1-128 characters and values at most 256 characters.",
                field="tags")
        out[key] = item
    return out


def parse_queue_attributes(name: str, given: Mapping[str, Any],
                           base: QueueAttributes | None = None) -> QueueAttributes:
    """Apply user-given attributes on top of `base` (defaults when creating).

    Checks each value's type and range and the rules that tie attributes together;
    whether the dead-letter queue exists is the broker's check.
    """
    creating = base is None
    attrs = base or QueueAttributes(fifo=name.endswith(".fifo"))
    changes: dict[str, Any] = {}
    for key, value in given.items():
        if key == "visibility_timeout":
            changes[key] = _int_in(key, value, 0, MAX_VISIBILITY)
        elif key == "receive_wait_seconds":
            changes[key] = _int_in(key, value, 0, MAX_WAIT)
        elif key == "retention_seconds":
            changes[key] = _int_in(key, value, MIN_RETENTION, MAX_RETENTION)
        elif key == "delay_seconds":
            changes[key] = _int_in(key, value, 0, MAX_DELAY_SQS)
        elif key == "max_message_bytes":
            changes[key] = _int_in(key, value, MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES)
        elif key == "max_receive_count":
            changes[key] = None if value is None else _int_in(key, value, 1, MAX_RECEIVE_COUNT)
        elif key == "dead_letter_queue":
            changes[key] = None if value is None else check_queue_name(value)
        elif key in ("paused", "content_based_deduplication"):
            changes[key] = _bool(key, value)
        elif key == "fifo":
            fifo = _bool(key, value)
            if fifo != name.endswith(".fifo") or (not creating and fifo != attrs.fifo):
                raise InvalidAttribute(
                    "fifo is set when a queue is created, and only for names ending in "
                    "'.fifo'.", field=key)
            changes[key] = fifo
        elif key == "durability":
            if value not in ("logged", "unlogged"):
                raise InvalidAttribute("durability must be 'logged' or 'unlogged'.", field=key)
            if not creating and value != attrs.durability:
                raise InvalidAttribute("durability is set when a queue is created.", field=key)
            changes[key] = value
        elif key == "tags":
            changes[key] = _tags(value)
        elif key == "redrive_allow_policy":
            changes[key] = _redrive_allow_policy(value)
        elif key in ("policy", "kms_master_key_id"):
            if value is not None and not (isinstance(value, str) and len(value) <= 10_000):
                raise InvalidAttribute(f"{key} must be a string of at most 10,000 characters.",
                                       field=key)
            changes[key] = value or None
        elif key == "kms_data_key_reuse_period_seconds":
            changes[key] = None if value is None else _int_in(key, value, MIN_KMS_REUSE,
                                                              MAX_KMS_REUSE)
        elif key == "sqs_managed_sse_enabled":
            changes[key] = None if value is None else _bool(key, value)
        elif key == "deduplication_scope":
            changes[key] = _one_of(key, value, ("queue", "messageGroup"))
        elif key == "fifo_throughput_limit":
            changes[key] = _one_of(key, value, ("perQueue", "perMessageGroupId"))
        else:
            raise InvalidAttribute(f"Unknown queue attribute {str(key)[:100]!r}."
                                   f"{_nearest_attribute(key)}", field=str(key)[:100])
    attrs = replace(attrs, **changes)
    if (attrs.max_receive_count is None) != (attrs.dead_letter_queue is None):
        raise InvalidAttribute(
            "max_receive_count and dead_letter_queue are set together or not at all.",
            field="dead_letter_queue")
    if attrs.dead_letter_queue == name:
        raise InvalidAttribute("A queue cannot be its own dead-letter queue.",
                               field="dead_letter_queue")
    if attrs.content_based_deduplication and not attrs.fifo:
        raise InvalidAttribute("content_based_deduplication is for FIFO queues.",
                               field="content_based_deduplication")
    for key in ("deduplication_scope", "fifo_throughput_limit"):
        if key in given and not attrs.fifo:
            raise InvalidAttribute(f"{key} is for FIFO queues.", field=key)
    return attrs


def _nearest_attribute(key: Any) -> str:
    """' Did you mean ...?' naming the valid attribute closest to an unknown one (another
    spelling of it, like SQS's `VisibilityTimeout`, or a near miss), or nothing."""
    def squash(name: str) -> str:
        return name.replace("_", "").replace("-", "").lower()

    names = {squash(name): name for name in QueueAttributes.__dataclass_fields__}
    if not isinstance(key, str):
        return ""
    found = names.get(squash(key)) or next(
        (names[n] for n in difflib.get_close_matches(squash(key), names, n=1, cutoff=0.6)),
        None)
    return f" Did you mean {found!r}?" if found else ""


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidAttribute(f"{name} must be one of {', '.join(allowed)}, not {value!r}.",
                               field=name)
    return str(value)


def _check_text(text: str, what: str, index: int | None) -> None:
    bad = _FORBIDDEN_CHARS.search(text)
    if bad is not None:
        raise InvalidMessage(
            f"{what} contains the character U+{ord(bad.group()):04X}, which is not allowed.",
            index=index, field=what)


_REDRIVE_PERMISSIONS = ("allowAll", "denyAll", "byQueue")


def _redrive_allow_policy(value: Any) -> str | None:
    """SQS's RedriveAllowPolicy JSON, checked here for every API: the SQS endpoint reads
    it whenever a queue names this one as its dead-letter queue."""
    if value is None or value == "":
        return None
    bad = InvalidAttribute(
        "redrive_allow_policy must be SQS's RedriveAllowPolicy JSON: an object with "
        "redrivePermission allowAll, denyAll or byQueue (byQueue with 1 to 10 "
        "sourceQueueArns).", field="redrive_allow_policy")
    if not isinstance(value, str) or len(value) > 10_000:
        raise bad
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise bad from None
    if not isinstance(data, dict) or data.get("redrivePermission") not in _REDRIVE_PERMISSIONS:
        raise bad
    sources = data.get("sourceQueueArns")
    if data["redrivePermission"] == "byQueue" and not (
            isinstance(sources, list) and 1 <= len(sources) <= 10
            and all(isinstance(s, str) for s in sources)):
        raise bad
    return value


def _check_surrogates(text: str, what: str, index: int | None) -> None:
    bad = _SURROGATE.search(text)
    if bad is not None:
        raise InvalidMessage(
            f"{what} contains the lone surrogate U+{ord(bad.group()):04X}, which is not "
            "allowed.", index=index, field=what)


def _check_token(value: str | None, what: str, index: int) -> None:
    if value is not None and not (isinstance(value, str) and _TOKEN.fullmatch(value)):
        raise InvalidMessage(f"{what} must be 1-128 printable ASCII characters.",
                             index=index, field=what)


def check_attributes(attributes: Mapping[str, MessageAttribute], index: int) -> int:
    """Validate message attributes; returns the bytes they count towards the size limit."""
    if len(attributes) - (TRACE_HEADER_ATTRIBUTE in attributes) > MAX_ATTRIBUTES:
        raise InvalidMessage(f"A message has at most {MAX_ATTRIBUTES} attributes.",
                             index=index, field="attributes")
    size = 0
    for name, attribute in attributes.items():
        if name == TRACE_HEADER_ATTRIBUTE and attribute.type == "String" and \
                isinstance(attribute.value, str):
            _check_text(attribute.value, "AWSTraceHeader", index)
            continue
        lowered = name.lower()
        if (not _ATTRIBUTE_NAME.fullmatch(name) or lowered.startswith(("aws.", "amazon."))
                or name.startswith(".") or name.endswith(".") or ".." in name):
            raise InvalidMessage(f"Message attribute name {name[:100]!r} is invalid.",
                                 index=index, field="attributes")
        if not _ATTRIBUTE_TYPE.fullmatch(attribute.type):
            raise InvalidMessage(
                f"Message attribute {name!r} has type {attribute.type[:100]!r}; use String, "
                "Number or Binary.", index=index, field="attributes")
        value = attribute.value
        if attribute.base_type == "Binary":
            if not isinstance(value, bytes):
                raise InvalidMessage(f"Message attribute {name!r} must be binary.",
                                     index=index, field="attributes")
            size += len(value)
        else:
            if not isinstance(value, str) or (
                    attribute.base_type == "Number" and not _NUMBER.fullmatch(value.strip())):
                raise InvalidMessage(
                    f"Message attribute {name!r} has an invalid {attribute.base_type} value.",
                    index=index, field="attributes")
            _check_text(value, f"Message attribute {name!r}", index)
            size += len(value.encode())
        size += len(name.encode()) + len(attribute.type)
    return size


def check_send_entry(entry: SendEntry, index: int, attrs: QueueAttributes) -> None:
    """Validate one message against its queue's attributes."""
    body = entry.body
    if not isinstance(body, Body) or not body.text:
        raise InvalidMessage("A message body must not be empty.", index=index, field="body")
    if body.kind is BodyKind.TEXT:
        _check_text(body.text, "The message body", index)
    else:  # JSON escapes control characters, but a lone surrogate cannot be stored as UTF-8
        _check_surrogates(body.text, "The message body", index)
    size = len(body.text.encode("utf-8", "surrogatepass")) + check_attributes(
        entry.attributes, index)
    if size > attrs.max_message_bytes:
        raise MessageTooLarge(
            f"Message {index} is {size} bytes; this queue takes at most "
            f"{attrs.max_message_bytes}.", index=index, field="body")
    if entry.delay_seconds is not None:
        _int_delay(entry.delay_seconds, attrs, index)
        if attrs.fifo:
            raise InvalidMessage("FIFO queues take no per-message delay; set the queue's "
                                 "delay_seconds instead.", index=index, field="delay_seconds")
    if isinstance(entry.priority, bool) or not isinstance(entry.priority, int) or \
            not 0 <= entry.priority <= MAX_PRIORITY:
        raise InvalidMessage(f"priority must be between 0 and {MAX_PRIORITY}.",
                             index=index, field="priority")
    _check_token(entry.deduplication_id, "deduplication_id", index)
    _check_token(entry.group_id, "group_id", index)
    if entry.claim is not None:
        _check_claim(entry.claim, index, attrs)
    if attrs.fifo:
        _check_fifo_entry(entry, index, attrs)


MAX_CLAIM_KEY = 512
MAX_CLAIM_SECONDS = 366 * 86_400


def _check_claim(claim: Claim, index: int, attrs: QueueAttributes) -> None:
    if not isinstance(claim, Claim):
        raise InvalidMessage("claim must be a Claim.", index=index, field="claim")
    if not isinstance(claim.key, str) or not 1 <= len(claim.key) <= MAX_CLAIM_KEY:
        raise InvalidMessage(f"claim.key must be a string of 1 to {MAX_CLAIM_KEY} "
                             "characters.", index=index, field="claim.key")
    _check_surrogates(claim.key, "claim.key", index)
    if "\x00" in claim.key:  # PostgreSQL's text cannot hold it: refused on both
        raise InvalidMessage("claim.key must not contain a NUL character.", index=index,
                             field="claim.key")
    if isinstance(claim.seconds, bool) or not isinstance(claim.seconds, int) or \
            not 1 <= claim.seconds <= MAX_CLAIM_SECONDS:
        raise InvalidMessage(f"claim.seconds must be an integer from 1 to "
                             f"{MAX_CLAIM_SECONDS}.", index=index, field="claim.seconds")
    if not isinstance(claim.replace, bool):
        raise InvalidMessage("claim.replace must be true or false.", index=index,
                             field="claim.replace")
    if attrs.fifo:
        raise InvalidMessage("FIFO queues take no claim (unique or debounced messages); "
                             "use a deduplication_id.", index=index, field="claim")


def _check_fifo_entry(entry: SendEntry, index: int, attrs: QueueAttributes) -> None:
    if entry.group_id is None:
        raise MissingParameter("FIFO queues need a group_id on every message.", index=index,
                               field="group_id")
    if entry.deduplication_id is None and not attrs.content_based_deduplication:
        raise InvalidMessage(
            "This FIFO queue needs a deduplication_id on every message (or "
            "content_based_deduplication on the queue).", index=index,
            field="deduplication_id")
    if entry.priority:
        raise InvalidMessage("FIFO queues deliver in order and take no priority.",
                             index=index, field="priority")


def _int_delay(value: Any, attrs: QueueAttributes, index: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 0 <= value <= attrs.retention_seconds:
        raise InvalidMessage(
            f"delay_seconds must be between 0 and the queue's retention "
            f"({attrs.retention_seconds} s).", index=index, field="delay_seconds")


def check_batch_size(count: int, limit: int = MAX_BATCH) -> None:
    """Batches hold 1..limit entries."""
    if count == 0:
        raise EmptyBatch("The batch has no entries.")
    if count > limit:
        raise TooManyEntries(f"A batch holds at most {limit} entries, not {count}.")


def check_receive(max_messages: Any, visibility_timeout: Any, wait_seconds: Any) -> None:
    """Ranges of receive parameters."""
    _range_or_invalid("max_messages", max_messages, 1, MAX_BATCH)
    if visibility_timeout is not None:
        _range_or_invalid("visibility_timeout", visibility_timeout, 0, MAX_VISIBILITY)
    if wait_seconds is not None:
        _range_or_invalid("wait_seconds", wait_seconds, 0, MAX_WAIT)


MAX_SKIP_GROUPS = 1000


def check_skip_groups(groups: Any) -> tuple[str, ...]:
    """A receive's message groups to pass over: up to 1,000 group ids."""
    if isinstance(groups, str) or not isinstance(groups, list | tuple) or \
            len(groups) > MAX_SKIP_GROUPS or not all(
                isinstance(g, str) and _TOKEN.fullmatch(g) for g in groups):
        raise InvalidInput(f"skip_groups must be a list of at most {MAX_SKIP_GROUPS:,} "
                           "group ids (1-128 printable ASCII characters each).",
                           field="skip_groups")
    return tuple(groups)


def check_visibility_timeout(value: Any, index: int | None = None) -> int:
    """A lease length in seconds, 0..12 h."""
    return _range_or_invalid("visibility_timeout", value, 0, MAX_VISIBILITY, index)


def _range_or_invalid(name: str, value: Any, low: int, high: int,
                      index: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer between {low} and {high}.",
                           field=name, index=index)
    return value


def dedup_id(entry: SendEntry, attrs: QueueAttributes) -> str | None:
    """The entry's deduplication id; on FIFO queues with content-based deduplication and
    none given, the SHA-256 of the body (as SQS does)."""
    if entry.deduplication_id is not None or not attrs.content_based_deduplication:
        return entry.deduplication_id
    return hashlib.sha256(entry.body.text.encode("utf-8", "surrogatepass")).hexdigest()
