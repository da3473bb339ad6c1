"""Every error this endpoint answers with: AWS's code, HTTP status and message text.

One row per documented condition, keyed by a short name; `fail(key, **values)` makes the
error, filling the row's `{placeholders}`. The texts are those SQS itself sends (as seen
by the SDKs, and as the public local SQS servers that check themselves against AWS
reproduce them); `query` holds the query protocol's wording where SQS words it
differently. `tests/sqs/test_errors.py` triggers every row over both protocols.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor import errors as e
from conveyor.sqs.errors import (
    BATCH_IDS_NOT_DISTINCT,
    BATCH_TOO_LONG,
    EMPTY_BATCH,
    INVALID_ACTION,
    INVALID_ATTRIBUTE_NAME,
    INVALID_ATTRIBUTE_VALUE,
    INVALID_BATCH_ENTRY_ID,
    INVALID_MESSAGE_CONTENTS,
    INVALID_PARAMETER_VALUE,
    MISSING_PARAMETER,
    OVER_LIMIT,
    PURGE_QUEUE_IN_PROGRESS,
    QUEUE_DELETED_RECENTLY,
    QUEUE_DOES_NOT_EXIST,
    QUEUE_NAME_EXISTS,
    RECEIPT_HANDLE_IS_INVALID,
    RESOURCE_NOT_FOUND,
    TOO_MANY_ENTRIES,
    AwsError,
    SqsError,
    aws_error_for,
)


@dataclass(frozen=True, slots=True)
class Text:
    """One documented error: its kind (code, status) and message template."""

    kind: AwsError
    text: str
    query: str | None = None  # the query protocol's wording, where it differs


_P = INVALID_PARAMETER_VALUE
_ALLOWED = ("#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF")
_QUEUE_NAME = "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"

TEXTS: dict[str, Text] = {
    # any action naming a queue
    "queue_missing": Text(QUEUE_DOES_NOT_EXIST, "The specified queue does not exist.",
                          query="The specified queue does not exist for this wsdl version."),
    "missing_parameter": Text(MISSING_PARAMETER,
                              "The request must contain the parameter {name}."),
    "invalid_action": Text(INVALID_ACTION, "The action {action} is not valid for this endpoint."),
    "max_results": Text(_P, "Value {value} for parameter MaxResults is invalid. Reason: "
                            "MaxResults must be an integer between 1 and 1000."),
    "not_an_integer": Text(_P, "Value {value} for parameter {name} is invalid. Reason: Must "
                               "be an integer."),
    # CreateQueue, SetQueueAttributes, GetQueueAttributes
    "queue_name": Text(_P, _QUEUE_NAME),
    "fifo_queue_name": Text(_P, "The name of a FIFO queue can only include alphanumeric "
                                "characters, hyphens, or underscores, must end with .fifo "
                                "suffix and be 1 to 80 in length."),
    "queue_exists": Text(QUEUE_NAME_EXISTS, "A queue already exists with the same name and a "
                                            "different value for attribute {name}"),
    "queue_deleted_recently": Text(QUEUE_DELETED_RECENTLY, "You must wait 60 seconds after "
                                   "deleting a queue before you can create another with the "
                                   "same name."),
    "unknown_attribute": Text(INVALID_ATTRIBUTE_NAME, "Unknown Attribute {name}."),
    "fifo_only_attribute": Text(INVALID_ATTRIBUTE_NAME, "You can specify the {name} only when "
                                                        "FifoQueue is set to true."),
    "sse_exclusive": Text(INVALID_ATTRIBUTE_NAME, "You can use one type of server-side "
                                                  "encryption (SSE) at one time. You can either "
                                                  "enable KMS SSE or SQS SSE."),
    "attribute_value": Text(INVALID_ATTRIBUTE_VALUE, "Invalid value for the parameter {name}."),
    "fifo_immutable": Text(INVALID_ATTRIBUTE_VALUE, "Invalid value for the parameter FifoQueue. "
                                                    "Reason: Modifying queue type is not "
                                                    "supported."),
    "redrive_policy": Text(_P, "Value {value} for parameter RedrivePolicy is invalid. Reason: "
                               "{reason}"),
    "redrive_allow_policy": Text(_P, "Value {value} for parameter RedriveAllowPolicy is "
                                     "invalid. Reason: {reason}"),
    "dead_letter_target": Text(_P, "Value {value} for parameter RedrivePolicy is invalid. "
                                   "Reason: Dead letter target does not exist."),
    # PurgeQueue
    "purge_in_progress": Text(PURGE_QUEUE_IN_PROGRESS, "Only one PurgeQueue operation on {name} "
                                                       "is allowed every 60 seconds."),
    # TagQueue, UntagQueue
    "too_many_tags": Text(_P, "Too many tags added for queue {name}."),
    "tag_keys": Text(_P, "Tag keys must be between 1 and 128 characters in length."),
    "tag_values": Text(_P, "Tag values must be between 0 and 256 characters in length."),
    # SendMessage, SendMessageBatch
    "message_too_long": Text(_P, "One or more parameters are invalid. Reason: Message must be "
                                 "shorter than {limit} bytes."),
    "message_contents": Text(INVALID_MESSAGE_CONTENTS, "Invalid characters found. Valid unicode "
                                                       f"characters are {_ALLOWED}"),
    "delay_seconds": Text(_P, "Value {value} for parameter DelaySeconds is invalid. Reason: "
                              "DelaySeconds must be >= 0 and <= 900."),
    "fifo_delay": Text(_P, "Value {value} for parameter DelaySeconds is invalid. Reason: The "
                           "request include parameter that is not valid for this queue type."),
    "standard_dedup": Text(_P, "Value {value} for parameter MessageDeduplicationId is invalid. "
                               "Reason: The request includes a parameter that is not valid for "
                               "this queue type."),
    # A FIFO batch is refused whole when an entry lacks its group (this code, not
    # MissingParameter as for SendMessage) or its deduplication id.
    "batch_group_missing": Text(_P, "The request must contain the parameter MessageGroupId."),
    "dedup_required": Text(_P, "The queue should either have ContentBasedDeduplication enabled "
                               "or MessageDeduplicationId provided explicitly"),
    "fifo_token": Text(_P, "Value {value} for parameter {name} is invalid. Reason: {name} can "
                           "only include alphanumeric and punctuation characters. 1 to 128 in "
                           "length."),
    "attribute_count": Text(_P, "Number of message attributes [{count}] exceeds the allowed "
                                "maximum [10]."),
    "attribute_name": Text(_P, "Message (user) attribute names can only contain upper and lower "
                               "case characters, digits, periods, hyphens and underscores, and "
                               "must be shorter than 256 bytes."),
    "attribute_reserved": Text(_P, "You can't use message attribute names beginning with 'AWS.' "
                                   "or 'Amazon.'. These strings are reserved for internal use. "
                                   "Additionally, they cannot start or end with '.'."),
    "attribute_type": Text(_P, "The type of message (user) attribute '{name}' is invalid. You "
                               "must use only the following supported type prefixes: Binary, "
                               "Number, String."),
    "attribute_empty": Text(_P, "Message (user) attribute '{name}' must contain a non-empty "
                                "value of type '{type}'."),
    "attribute_number": Text(_P, "Can't cast the value of message (user) attribute '{name}' to "
                                 "a number."),
    "attribute_binary": Text(_P, "The message attribute '{name}' with type 'Binary' must use "
                                 "field 'Binary'."),
    "attribute_characters": Text(_P, "Message (user) attribute '{name}' contains invalid "
                                     f"characters. Valid unicode characters are {_ALLOWED}"),
    "attribute_missing_type": Text(_P, "The message attribute '{name}' must contain non-empty "
                                       "message attribute type."),
    "system_attribute": Text(_P, "Message system attribute name '{name}' is invalid."),
    "trace_header_type": Text(_P, "The message system attribute AWSTraceHeader must be of type "
                                  "String."),
    # ReceiveMessage
    "max_messages": Text(_P, "Value {value} for parameter MaxNumberOfMessages is invalid. "
                             "Reason: Must be between 1 and 10, if provided."),
    "wait_time": Text(_P, "Value {value} for parameter WaitTimeSeconds is invalid. Reason: "
                          "Must be >= 0 and <= 20, if provided."),
    "visibility_timeout": Text(_P, "Value {value} for parameter VisibilityTimeout is invalid. "
                                   "Reason: Must be >= 0 and <= 43200, if provided."),
    "attempt_id": Text(_P, "Value {value} for parameter ReceiveRequestAttemptId is invalid. "
                           "Reason: ReceiveRequestAttemptId can only include alphanumeric and "
                           "punctuation characters. 1 to 128 in length."),
    # DeleteMessage, ChangeMessageVisibility (and their batches, per entry)
    "receipt_handle": Text(RECEIPT_HANDLE_IS_INVALID, 'The input receipt handle "{handle}" is '
                                                      "not a valid receipt handle."),
    "receipt_expired": Text(_P, "Value {handle} for parameter ReceiptHandle is invalid. Reason: "
                                "The receipt handle has expired."),
    "not_in_flight": Text(_P, "Value {handle} for parameter ReceiptHandle is invalid. Reason: "
                              "Message does not exist or is not available for visibility "
                              "timeout change."),
    "visibility_limit": Text(_P, "Value {value} for parameter VisibilityTimeout is invalid. "
                                 "Reason: Total VisibilityTimeout for the message is beyond the "
                                 "limit [43200 seconds]"),
    # batches
    "empty_batch": Text(EMPTY_BATCH, "There should be at least one {entry} in the request."),
    "too_many_entries": Text(TOO_MANY_ENTRIES, "Maximum number of entries per request are 10. "
                                               "You have sent {count}."),
    "batch_entry_id": Text(INVALID_BATCH_ENTRY_ID, "A batch entry id can only contain "
                                                   "alphanumeric characters, hyphens and "
                                                   "underscores. It can be at most 80 letters "
                                                   "long."),
    "batch_ids_not_distinct": Text(BATCH_IDS_NOT_DISTINCT, "Id {id} repeated."),
    "batch_too_long": Text(BATCH_TOO_LONG, "Batch requests cannot be longer than 1048576 "
                                           "bytes. You have sent {size} bytes."),
    # AddPermission, RemovePermission
    "permission_label": Text(_P, "Value {label} for parameter Label is invalid. Reason: Can "
                                 "only include alphanumeric characters, hyphens, or "
                                 "underscores. 1 to 80 in length."),
    "permission_exists": Text(_P, "Value {label} for parameter Label is invalid. Reason: "
                                  "Already exists."),
    "permission_missing": Text(_P, "Value {label} for parameter Label is invalid. Reason: can't "
                                   "find label."),
    "permission_action": Text(_P, "Value SQS:{action} for parameter ActionName is invalid. "
                                  "Reason: Only the queue owner is allowed to invoke this "
                                  "action."),
    "permission_accounts": Text(_P, "Value [] for parameter PrincipalId is invalid. Reason: "
                                    "Unable to verify."),
    "permission_actions_over": Text(OVER_LIMIT, "{count} Actions were found, maximum allowed "
                                                "is 7."),
    "policy_statements": Text(OVER_LIMIT, "{count} statements were found, maximum allowed is "
                                          "{limit}."),
    # message move tasks
    "source_arn_missing": Text(RESOURCE_NOT_FOUND, "The resource that you specified for the "
                                                   "SourceArn parameter doesn't exist."),
    "destination_arn_missing": Text(RESOURCE_NOT_FOUND, "The resource that you specified for "
                                                        "the DestinationArn parameter doesn't "
                                                        "exist."),
    "arn_format": Text(_P, "You must use this format to specify the {name}: "
                           "arn:<partition>:<service>:<region>:<account-id>:<resource-id>"),
    "not_a_dead_letter_queue": Text(_P, "Source queue must be configured as a Dead Letter "
                                        "Queue."),
    "task_running": Text(_P, "There is already a task running. Only one active task is "
                             "allowed for a source queue arn at a given time."),
    "task_handle": Text(_P, "Value for parameter TaskHandle is invalid."),
    "task_missing": Text(RESOURCE_NOT_FOUND, "Task does not exist."),
    "task_not_running": Text(_P, "Only active tasks can be cancelled."),
}


def fail(key: str, **values: object) -> SqsError:
    """The error of row `key`, its template filled with `values`."""
    row = TEXTS[key]
    shown = {k: _short(v) for k, v in values.items()}
    return SqsError(row.kind, row.text.format(**shown),
                    query_message=row.query.format(**shown) if row.query else None, key=key)


def _short(value: object) -> object:
    """Client input quoted in a message is cut, so an answer never echoes a megabyte."""
    if isinstance(value, str) and len(value) > 256:
        return value[:256]
    return value


def from_domain(exc: e.ConveyorError) -> SqsError:
    """Translate a domain error: AWS's own text where AWS has one, else its sentence."""
    if isinstance(exc, e.QueueNotFound):
        return fail("queue_missing")
    return SqsError(aws_error_for(exc), exc.message)
