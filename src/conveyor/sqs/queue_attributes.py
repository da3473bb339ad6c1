"""SQS queue attributes <-> conveyor's QueueAttributes, with AWS's checks and texts.

Every value arrives as a string. `Policy` (a JSON document of at most 8,192 bytes) and the
encryption attributes (`KmsMasterKeyId`, `KmsDataKeyReusePeriodSeconds`,
`SqsManagedSseEnabled`) are kept and returned as given so that queues declared by
Terraform, CloudFormation or CDK can be created; nothing here encrypts (encryption at rest
is the database's) and the policy is not enforced (access is the server's API keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from conveyor.broker import validation as v
from conveyor.digits import integer
from conveyor.models import Queue, QueueStats
from conveyor.sqs.context import Context
from conveyor.sqs.errors import SqsError
from conveyor.sqs.texts import fail

# SQS name -> (QueueAttributes field, low, high) for integer attributes.
_INTEGERS = {
    "VisibilityTimeout": ("visibility_timeout", 0, v.MAX_VISIBILITY),
    "DelaySeconds": ("delay_seconds", 0, v.MAX_DELAY_SQS),
    "MessageRetentionPeriod": ("retention_seconds", v.MIN_RETENTION, v.MAX_RETENTION),
    "MaximumMessageSize": ("max_message_bytes", v.MIN_MESSAGE_BYTES, v.MAX_MESSAGE_BYTES),
    "ReceiveMessageWaitTimeSeconds": ("receive_wait_seconds", 0, v.MAX_WAIT),
    "KmsDataKeyReusePeriodSeconds": ("kms_data_key_reuse_period_seconds", v.MIN_KMS_REUSE,
                                     v.MAX_KMS_REUSE),
}
_BOOLEANS = {"ContentBasedDeduplication": "content_based_deduplication",
             "SqsManagedSseEnabled": "sqs_managed_sse_enabled"}
_CHOICES = {
    "DeduplicationScope": ("deduplication_scope", ("messageGroup", "queue")),
    "FifoThroughputLimit": ("fifo_throughput_limit", ("perQueue", "perMessageGroupId")),
}
_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
           "ApproximateNumberOfMessagesDelayed")
_READ_ONLY = (*_COUNTS, "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn")
# Every attribute GetQueueAttributes knows, in the model's order.
READABLE = ("Policy", "VisibilityTimeout", "MaximumMessageSize", "MessageRetentionPeriod",
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn",
            "ApproximateNumberOfMessagesDelayed", "DelaySeconds",
            "ReceiveMessageWaitTimeSeconds", "RedrivePolicy", "FifoQueue",
            "ContentBasedDeduplication", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
            "DeduplicationScope", "FifoThroughputLimit", "RedriveAllowPolicy",
            "SqsManagedSseEnabled")
MAX_POLICY_BYTES = 8192
MAX_KMS_KEY_ID = 2048
_PERMISSIONS = ("allowAll", "denyAll", "byQueue")
_ALLOW_FORMAT = "Amazon SQS can't create the redrive allow policy, as it's in an unsupported "\
    "format."


def to_broker(ctx: Context, given: Mapping[str, str], fifo: bool,
              current: Queue | None = None) -> dict[str, Any]:
    """SQS attributes of a CreateQueue (`current` None) or SetQueueAttributes -> the
    broker's attribute dict, or the error AWS answers."""
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name in _READ_ONLY or (not fifo and name in ("FifoQueue",
                                                        "ContentBasedDeduplication")):
            raise fail("unknown_attribute", name=name)
        if not fifo and name in _CHOICES:
            raise fail("fifo_only_attribute", name=name)
        if name in _INTEGERS:
            field, low, high = _INTEGERS[name]
            out[field] = _integer(name, value, low, high)
        elif name in _BOOLEANS:
            out[_BOOLEANS[name]] = _boolean(name, value)
        elif name in _CHOICES:
            field, allowed = _CHOICES[name]
            if value not in allowed:
                raise fail("attribute_value", name=name)
            out[field] = value
        elif name == "FifoQueue":
            if current is not None:  # only CreateQueue sets it
                raise fail("fifo_immutable")
            if _boolean(name, value) is not True:
                raise fail("queue_name")
        elif name == "Policy":
            out["policy"] = _policy(value)
        elif name == "KmsMasterKeyId":
            if len(value) > MAX_KMS_KEY_ID:
                raise fail("attribute_value", name=name)
            out["kms_master_key_id"] = value or None
        elif name == "RedrivePolicy":
            out.update(_redrive_policy(ctx, value))
        elif name == "RedriveAllowPolicy":
            out["redrive_allow_policy"] = _redrive_allow_policy(ctx, value)
        else:
            raise fail("unknown_attribute", name=name)
    key = out.get("kms_master_key_id", current.attributes.kms_master_key_id if current else None)
    if out.get("sqs_managed_sse_enabled") and key:
        raise fail("sse_exclusive")
    if out.get("kms_master_key_id") and "sqs_managed_sse_enabled" not in out:
        out["sqs_managed_sse_enabled"] = None  # a KMS key replaces SSE-SQS
    return out


def _integer(name: str, value: str, low: int, high: int) -> int:
    number = integer(value, signed=True) if isinstance(value, str) else None
    if number is None or not low <= number <= high:
        raise fail("attribute_value", name=name)
    return number


def _boolean(name: str, value: str) -> bool:
    lowered = value.lower() if isinstance(value, str) else ""
    if lowered not in ("true", "false"):
        raise fail("attribute_value", name=name)
    return lowered == "true"


_POLICY_KEYS = frozenset({"Version", "Id", "Statement"})
_POLICY_VERSIONS = ("2008-10-17", "2012-10-17")
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Principal", "NotPrincipal", "Action",
                             "NotAction", "Resource", "NotResource", "Condition"})


def _policy(value: str) -> str | None:
    """A policy document of at most 8,192 bytes, in the access policy grammar SQS checks;
    "" removes it. Anything else is InvalidAttributeValue, as on SQS (which refuses, for
    example, a document without statements, the one RemovePermission would leave)."""
    if not value:
        return None
    if len(value.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise fail("attribute_value", name="Policy")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise fail("attribute_value", name="Policy") from None
    if not _valid_policy(data):
        raise fail("attribute_value", name="Policy")
    return value


def _valid_policy(data: Any) -> bool:
    """A JSON object of Version (2008-10-17 or 2012-10-17), Id and at least one Statement,
    each with an Effect (Allow or Deny), a Principal or NotPrincipal, and an Action or
    NotAction (Resource, Sid and Condition optional; no other members)."""
    if not isinstance(data, dict) or not data.keys() <= _POLICY_KEYS:
        return False
    if "Version" in data and data["Version"] not in _POLICY_VERSIONS:
        return False
    if "Id" in data and not isinstance(data["Id"], str):
        return False
    statements = data.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        return False
    return all(_valid_statement(s) for s in statements)


def _valid_statement(statement: Any) -> bool:
    if not isinstance(statement, dict) or not statement.keys() <= _STATEMENT_KEYS:
        return False
    if statement.get("Effect") not in ("Allow", "Deny"):
        return False
    if "Sid" in statement and not isinstance(statement["Sid"], str):
        return False
    if "Condition" in statement and not isinstance(statement["Condition"], dict):
        return False
    for pair, check in ((("Principal", "NotPrincipal"), _principal),
                        (("Action", "NotAction"), _names)):
        present = [statement[k] for k in pair if k in statement]
        if len(present) != 1 or not check(present[0]):
            return False
    resources = [statement[k] for k in ("Resource", "NotResource") if k in statement]
    return len(resources) <= 1 and all(_names(r) for r in resources)


def _names(value: Any) -> bool:
    """An action or resource element: a string or a non-empty list of strings."""
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and \
        all(isinstance(v, str) and v for v in value)


def _principal(value: Any) -> bool:
    """A Principal: "*" or a map such as {"AWS": ...} or {"Service": ...} of names."""
    if isinstance(value, dict):
        return bool(value) and all(isinstance(k, str) and _names(v) for k, v in value.items())
    return _names(value)


def _json_object(value: str) -> dict[str, Any] | None:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _redrive_policy(ctx: Context, value: str) -> dict[str, Any]:
    if not value:
        return {"dead_letter_queue": None, "max_receive_count": None}

    def bad(reason: str) -> SqsError:
        return fail("redrive_policy", value=value, reason=reason)

    data = _json_object(value)
    if data is None:
        raise bad("Redrive policy is not a valid JSON map.")
    for key in ("deadLetterTargetArn", "maxReceiveCount"):
        if key not in data:
            raise bad(f"Redrive policy does not contain mandatory attribute: {key}.")
    arn, count = data["deadLetterTargetArn"], data["maxReceiveCount"]
    if isinstance(count, str) and (number := integer(count)) is not None:
        count = number
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise bad(f"Invalid value for maxReceiveCount: {count}, valid values are from 1 to "
                  "1000 both inclusive.")
    found = ctx.parse_arn(arn) if isinstance(arn, str) else None
    if found is None:
        raise bad("Invalid value for deadLetterTargetArn.")
    if found[0] != ctx.region:
        raise fail("dead_letter_target", value=value)
    return {"dead_letter_queue": found[1], "max_receive_count": count}


def _redrive_allow_policy(ctx: Context, value: str) -> str | None:
    if not value:
        return None
    bad = fail("redrive_allow_policy", value=value, reason=_ALLOW_FORMAT)
    data = _json_object(value)
    if data is None:
        raise bad
    permission = data.get("redrivePermission")
    sources = data.get("sourceQueueArns")
    if permission not in _PERMISSIONS:
        raise bad
    if permission == "byQueue":
        if not isinstance(sources, list) or not 1 <= len(sources) <= 10 or \
                not all(isinstance(s, str) and ctx.parse_arn(s) for s in sources):
            raise bad
        return orjson.dumps({"redrivePermission": permission,
                             "sourceQueueArns": sources}).decode()
    if sources:
        raise bad
    return orjson.dumps({"redrivePermission": permission}).decode()


def redrive_allowed(dead_letter_queue: Queue, source_arn: str) -> bool:
    """Whether a dead-letter queue's RedriveAllowPolicy lets `source_arn` use it."""
    policy = dead_letter_queue.attributes.redrive_allow_policy
    if not policy:
        return True
    try:
        data = orjson.loads(policy)
    except orjson.JSONDecodeError:  # stored before the broker checked it: deny, not fail
        return False
    if not isinstance(data, dict):
        return False
    permission = data.get("redrivePermission")
    if permission == "denyAll":
        return False
    if permission == "byQueue":
        return source_arn in data.get("sourceQueueArns", [])
    return True


def requested(names: Iterable[str]) -> tuple[str, ...]:
    """The attribute names to answer with: `All` means every one; unknown names fail."""
    names = list(names)
    for name in names:
        if name != "All" and name not in READABLE:
            raise fail("unknown_attribute", name=name)
    if "All" in names:
        return READABLE
    return tuple(dict.fromkeys(names))


def needs_stats(names: Iterable[str]) -> bool:
    """Whether answering these names needs the queue's message counts."""
    return any(n in _COUNTS for n in names)


def from_queue(ctx: Context, queue: Queue, names: Iterable[str],
               stats: QueueStats | None) -> dict[str, str]:
    """GetQueueAttributes values (all strings), for the names asked that apply."""
    attrs = queue.attributes
    kms = attrs.kms_master_key_id
    sse = attrs.sqs_managed_sse_enabled
    values: dict[str, str | None] = {
        "Policy": attrs.policy,
        "VisibilityTimeout": str(attrs.visibility_timeout),
        "DelaySeconds": str(attrs.delay_seconds),
        "MessageRetentionPeriod": str(attrs.retention_seconds),
        "MaximumMessageSize": str(attrs.max_message_bytes),
        "ReceiveMessageWaitTimeSeconds": str(attrs.receive_wait_seconds),
        "CreatedTimestamp": str(queue.created_at // 1000),
        "LastModifiedTimestamp": str(queue.updated_at // 1000),
        "QueueArn": ctx.queue_arn(queue.name),
        "RedriveAllowPolicy": attrs.redrive_allow_policy,
        "KmsMasterKeyId": kms,
        # SSE-SQS is what a new SQS queue gets unless it names a KMS key (one or the other).
        "SqsManagedSseEnabled": str(sse if sse is not None else kms is None).lower(),
    }
    reuse = attrs.kms_data_key_reuse_period_seconds
    if reuse is not None or kms is not None:
        values["KmsDataKeyReusePeriodSeconds"] = str(300 if reuse is None else reuse)
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


def _normal(policy: str | None) -> dict[str, Any] | None:
    """A JSON policy for comparison (maxReceiveCount may be given as a string)."""
    data = _json_object(policy or "{}")
    count = data.get("maxReceiveCount") if data is not None else None
    if data is not None and isinstance(count, str) and (number := integer(count)) is not None:
        data["maxReceiveCount"] = number
    return data or None


def differing(ctx: Context, queue: Queue, given: Mapping[str, str]) -> str | None:
    """The first attribute of a CreateQueue whose value differs from the existing queue's
    (compared as GetQueueAttributes would answer it), or None."""
    current = from_queue(ctx, queue, READABLE, None)
    for name, value in given.items():
        have = current.get(name)
        if name in ("Policy", "RedrivePolicy", "RedriveAllowPolicy"):
            same = _normal(value) == _normal(have)
        elif name in _BOOLEANS or name == "FifoQueue":
            same = value.lower() == (have or "false")
        elif name == "KmsMasterKeyId":
            same = (value or None) == have
        else:
            same = value.strip() == have
        if not same:
            return name
    return None
