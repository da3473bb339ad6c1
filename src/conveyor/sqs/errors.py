"""SQS errors: each carries its AWS shape, legacy query code and HTTP status.

`ERROR_TABLE` is the one place where `conveyor.errors` classes become AWS errors; the
message texts AWS sends for each documented condition are `conveyor.sqs.texts.TEXTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor import errors as e

_LEGACY = "AWS.SimpleQueueService."


@dataclass(frozen=True, slots=True)
class AwsError:
    """An AWS error kind: the JSON `__type` shape, the query `Code` and the status."""

    shape: str
    code: str
    status: int = 400
    sender: bool = True


def _aws(shape: str, *, legacy: str | None = None, plain: bool = False, status: int = 400,
         sender: bool = True) -> AwsError:
    code = legacy or shape
    if not plain:
        code = _LEGACY + code
    return AwsError(shape, code, status, sender)


# Every AWS error this endpoint answers with, by shape name.
QUEUE_DOES_NOT_EXIST = _aws("QueueDoesNotExist", legacy="NonExistentQueue")
QUEUE_NAME_EXISTS = _aws("QueueNameExists", legacy="QueueAlreadyExists", plain=True)
QUEUE_DELETED_RECENTLY = _aws("QueueDeletedRecently")
PURGE_QUEUE_IN_PROGRESS = _aws("PurgeQueueInProgress", status=403)
OVER_LIMIT = _aws("OverLimit", plain=True, status=403)
TOO_MANY_ENTRIES = _aws("TooManyEntriesInBatchRequest")
EMPTY_BATCH = _aws("EmptyBatchRequest")
BATCH_IDS_NOT_DISTINCT = _aws("BatchEntryIdsNotDistinct")
BATCH_TOO_LONG = _aws("BatchRequestTooLong")
INVALID_BATCH_ENTRY_ID = _aws("InvalidBatchEntryId")
MESSAGE_NOT_INFLIGHT = _aws("MessageNotInflight")
UNSUPPORTED_OPERATION = _aws("UnsupportedOperation")
RECEIPT_HANDLE_IS_INVALID = _aws("ReceiptHandleIsInvalid", plain=True)
INVALID_ATTRIBUTE_NAME = _aws("InvalidAttributeName", plain=True)
INVALID_ATTRIBUTE_VALUE = _aws("InvalidAttributeValue", plain=True)
INVALID_MESSAGE_CONTENTS = _aws("InvalidMessageContents", plain=True)
INVALID_ID_FORMAT = _aws("InvalidIdFormat", plain=True)
# Not in the service model: SQS's JSON `__type` names them with an Exception suffix.
INVALID_PARAMETER_VALUE = _aws("InvalidParameterValueException", legacy="InvalidParameterValue",
                               plain=True)
MISSING_PARAMETER = _aws("MissingRequiredParameterException", legacy="MissingParameter",
                         plain=True)
INVALID_ACTION = _aws("InvalidAction", plain=True)
RESOURCE_NOT_FOUND = _aws("ResourceNotFoundException", plain=True, status=404)
ACCESS_DENIED = _aws("AccessDenied", plain=True, status=403)
SERVICE_UNAVAILABLE = _aws("ServiceUnavailable", plain=True, status=503, sender=False)
INTERNAL_ERROR = _aws("InternalError", plain=True, status=500, sender=False)


class SqsError(Exception):
    """An error to answer in the AWS shape of the request's protocol."""

    def __init__(self, kind: AwsError, message: str, *, query_message: str | None = None,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.query_message = query_message or message  # where the query protocol words it
        self.key = key  # the row of conveyor.sqs.texts.TEXTS, when it came from there


# Domain error -> AWS error. The most specific class in an exception's MRO wins.
ERROR_TABLE: dict[type[e.ConveyorError], AwsError] = {
    e.ConveyorError: INTERNAL_ERROR,
    e.InvalidInput: INVALID_PARAMETER_VALUE,
    e.InvalidDigest: INVALID_PARAMETER_VALUE,
    e.InvalidQueueName: INVALID_PARAMETER_VALUE,
    e.InvalidAttribute: INVALID_ATTRIBUTE_VALUE,
    e.InvalidMessage: INVALID_PARAMETER_VALUE,
    e.MessageTooLarge: INVALID_PARAMETER_VALUE,
    e.TooManyEntries: TOO_MANY_ENTRIES,
    e.EmptyBatch: EMPTY_BATCH,
    e.InvalidReceiptHandle: RECEIPT_HANDLE_IS_INVALID,
    e.MissingParameter: MISSING_PARAMETER,
    e.QueueNotFound: QUEUE_DOES_NOT_EXIST,
    e.QueueAlreadyExists: QUEUE_NAME_EXISTS,
    e.TaskNotFound: RESOURCE_NOT_FOUND,
    # Never raised by an SQS action (job explorer, recipients); the table is total.
    e.RecipientNotFound: RESOURCE_NOT_FOUND,
    e.TemplateNotFound: RESOURCE_NOT_FOUND,
    e.InvalidTemplate: INVALID_PARAMETER_VALUE,
    e.TemplateLocaleMissing: INVALID_PARAMETER_VALUE,
    e.JobNotFound: RESOURCE_NOT_FOUND,
    e.FlowNotFound: RESOURCE_NOT_FOUND,
    e.FlowNodeNotFound: RESOURCE_NOT_FOUND,
    e.InvalidFlow: INVALID_PARAMETER_VALUE,
    e.FlowCycle: INVALID_PARAMETER_VALUE,
    e.UnknownTask: INVALID_PARAMETER_VALUE,
    e.JobNotRetryable: UNSUPPORTED_OPERATION,
    e.JobNotCancellable: UNSUPPORTED_OPERATION,
    e.JobMessageGone: UNSUPPORTED_OPERATION,
    e.Conflict: UNSUPPORTED_OPERATION,
    e.OverLimit: OVER_LIMIT,
    e.Unsupported: UNSUPPORTED_OPERATION,
    e.StorageError: INTERNAL_ERROR,
    e.StorageUnavailable: SERVICE_UNAVAILABLE,
    e.ServerUnavailable: SERVICE_UNAVAILABLE,  # (a client's; listed for completeness)
}


def aws_error_for(exc: e.ConveyorError) -> AwsError:
    """The AWS error a domain error is answered with."""
    for cls in type(exc).__mro__:
        kind = ERROR_TABLE.get(cls)
        if kind is not None:
            return kind
    return INTERNAL_ERROR



def invalid(message: str) -> SqsError:
    """InvalidParameterValue with a sentence."""
    return SqsError(INVALID_PARAMETER_VALUE, message)


def missing(name: str) -> SqsError:
    """MissingParameter for a required request member."""
    return SqsError(MISSING_PARAMETER, f"The request must contain the parameter {name}.",
                    key="missing_parameter")
