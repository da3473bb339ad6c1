"""Unit tests of the wire layer: query unflattening and the one error table."""

from __future__ import annotations

import pytest

from conveyor import errors as e
from conveyor.sqs.errors import ERROR_TABLE, aws_error_for
from conveyor.sqs.wire import parse_query


def test_query_lists_and_maps_unflatten_into_json_members() -> None:
    request = parse_query([
        ("Action", "SendMessageBatch"), ("Version", "2012-11-05"), ("QueueUrl", "q"),
        ("SendMessageBatchRequestEntry.2.Id", "b"),
        ("SendMessageBatchRequestEntry.2.MessageBody", "B"),
        ("SendMessageBatchRequestEntry.1.Id", "a"),
        ("SendMessageBatchRequestEntry.1.MessageBody", "A"),
        ("SendMessageBatchRequestEntry.1.MessageAttribute.1.Name", "n"),
        ("SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType", "Number"),
        ("SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue", "1"),
    ])
    assert request.protocol == "query" and request.action == "SendMessageBatch"
    assert request.members == {"QueueUrl": "q", "Entries": [
        {"Id": "a", "MessageBody": "A",
         "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "1"}}},
        {"Id": "b", "MessageBody": "B"}]}
    other = parse_query([("Action", "ReceiveMessage"), ("AttributeName.1", "All"),
                         ("MessageAttributeNames.member.1", "x"),
                         ("Tags.1.key", "k"), ("Tags.1.value", "v")])
    assert other.members == {"AttributeNames": ["All"], "MessageAttributeNames": ["x"],
                             "Tags": {"k": "v"}}


def test_every_domain_error_has_an_aws_error() -> None:
    """Every class of the domain tree (conveyor.errors) has its own row; subclasses made
    elsewhere (the client's, the HTTP parser's) fall back to their parent's row."""
    def subclasses(cls: type[e.ConveyorError]) -> list[type[e.ConveyorError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    for cls in subclasses(e.ConveyorError):
        if cls.__module__ == e.__name__:
            assert cls in ERROR_TABLE, f"{cls.__name__} is missing from ERROR_TABLE"


@pytest.mark.parametrize(("error", "shape", "code", "status"), [
    (e.QueueNotFound(), "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", 400),
    (e.QueueAlreadyExists(), "QueueNameExists", "QueueAlreadyExists", 400),
    (e.InvalidReceiptHandle(), "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", 400),
    (e.TooManyEntries(), "TooManyEntriesInBatchRequest",
     "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400),
    (e.OverLimit(), "OverLimit", "OverLimit", 403),
    (e.StorageUnavailable(), "ServiceUnavailable", "ServiceUnavailable", 503),
])
def test_error_table(error: e.ConveyorError, shape: str, code: str, status: int) -> None:
    kind = aws_error_for(error)
    assert (kind.shape, kind.code, kind.status) == (shape, code, status)
