"""The one exception tree. Each class's docstring is its default message.

Protocol edges map these to status codes (`http`) and AWS codes (`sqs`), each in one table.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Something went wrong in conveyor."""

    code = "error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        super().__init__(self.message)


class InvalidInput(ConveyorError):
    """The request is invalid."""

    code = "invalid_input"

    def __init__(self, message: str | None = None, *, field: str | None = None,
                 index: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.index = index


class InvalidQueueName(InvalidInput):
    """Queue names are 1-80 letters, digits, '-' and '_' (FIFO names end in '.fifo')."""

    code = "invalid_queue_name"


class InvalidAttribute(InvalidInput):
    """A queue attribute is unknown or out of range."""

    code = "invalid_attribute"


class InvalidMessage(InvalidInput):
    """A message is invalid."""

    code = "invalid_message"


class MessageTooLarge(InvalidMessage):
    """The message body is larger than the queue allows."""

    code = "message_too_large"


class InvalidDigest(InvalidInput):
    """A notification's digest (key and window) is malformed or out of range."""

    code = "invalid_digest"


class TooManyEntries(InvalidInput):
    """The batch has too many entries."""

    code = "too_many_entries"


class EmptyBatch(InvalidInput):
    """The batch has no entries."""

    code = "empty_batch"


class InvalidReceiptHandle(InvalidInput):
    """The receipt handle is malformed."""

    code = "invalid_receipt_handle"


class MissingParameter(InvalidInput):
    """A required parameter is missing."""

    code = "missing_parameter"


class InvalidFlow(InvalidInput):
    """The flow is invalid."""

    code = "invalid_flow"


class FlowCycle(InvalidFlow):
    """The flow has a cycle: a step waits, through others, for itself."""

    code = "flow_cycle"


class UnknownTask(InvalidFlow):
    """The flow names a task that is not registered."""

    code = "unknown_task"


class InvalidTemplate(InvalidInput):
    """A template does not parse, or cannot render (a limit of `conveyor.sandbox`); `line`
    is where (1-based)."""

    code = "invalid_template"

    def __init__(self, message: str | None = None, *, field: str | None = None,
                 line: int | None = None) -> None:
        super().__init__(message, field=field)
        self.line = line


class TemplateLocaleMissing(InvalidInput):
    """The template has no locale for the recipient, and no fallback."""

    code = "template_locale_missing"


class QueueNotFound(ConveyorError):
    """The queue does not exist."""

    code = "queue_not_found"


class RecipientNotFound(ConveyorError):
    """The recipient does not exist."""

    code = "recipient_not_found"


class TemplateNotFound(ConveyorError):
    """The template does not exist."""

    code = "template_not_found"


class QueueAlreadyExists(ConveyorError):
    """A queue with this name already exists with different attributes."""

    code = "queue_already_exists"


class TaskNotFound(ConveyorError):
    """The task does not exist."""

    code = "task_not_found"


class Conflict(ConveyorError):
    """The request conflicts with the current state."""

    code = "conflict"


class JobNotFound(ConveyorError):
    """No status is recorded for the job (unknown, untracked or expired)."""

    code = "job_not_found"


class FlowNotFound(ConveyorError):
    """No such flow (it may have expired)."""

    code = "flow_not_found"


class FlowNodeNotFound(FlowNotFound):
    """The flow has no such node."""

    code = "flow_node_not_found"


class JobNotRetryable(Conflict):
    """Only a dead or failed job can be retried."""

    code = "job_not_retryable"


class JobNotCancellable(Conflict):
    """Only a queued, running or retrying job can be cancelled: this one has ended."""

    code = "job_not_cancellable"


class JobMessageGone(Conflict):
    """The job's dead-letter message is no longer there to send again."""

    code = "job_message_gone"


class OverLimit(ConveyorError):
    """A limit was reached."""

    code = "over_limit"


class Unsupported(ConveyorError):
    """This operation is not supported."""

    code = "unsupported"


class StorageError(ConveyorError):
    """The database failed."""

    code = "storage_error"


class StorageUnavailable(StorageError):
    """The database cannot be reached."""

    code = "storage_unavailable"


class ServerUnavailable(StorageUnavailable):
    """The conveyor server cannot be reached (a client's view: no answer at all)."""

    code = "server_unavailable"
