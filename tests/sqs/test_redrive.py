"""Dead-letter queues and message move tasks (the broker's redrive) through the endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.sqs.test_queues import error_of

Names = Callable[[str], str]


def arn_of(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"])


def with_dead_letters(sqs: Any, names: Names, max_receives: int = 2) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName=names("dlq"))["QueueUrl"]
    source = sqs.create_queue(QueueName=names("src"), Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn_of(sqs, dlq),
                                     "maxReceiveCount": max_receives})})["QueueUrl"]
    return source, dlq


def count(sqs: Any, url: str) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])


def wait_for_task(sqs: Any, source_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        [task] = sqs.list_message_move_tasks(SourceArn=source_arn)["Results"]
        if task["Status"] != "RUNNING" or time.monotonic() > deadline:
            return dict(task)
        time.sleep(0.05)


def test_dead_lettered_after_max_receives_then_moved_back(sqs: Any, names: Names) -> None:
    source, dlq = with_dead_letters(sqs, names, max_receives=2)
    sqs.send_message(QueueUrl=source, MessageBody="poison")
    for attempt in (1, 2):
        [message] = sqs.receive_message(QueueUrl=source, VisibilityTimeout=0,
                                        AttributeNames=["ApproximateReceiveCount"])["Messages"]
        assert message["Attributes"]["ApproximateReceiveCount"] == str(attempt)
    assert "Messages" not in sqs.receive_message(QueueUrl=source)  # third try: moved
    assert count(sqs, dlq) == 1
    handle = sqs.start_message_move_task(SourceArn=arn_of(sqs, dlq))["TaskHandle"]
    assert handle
    task = wait_for_task(sqs, arn_of(sqs, dlq))
    assert task["Status"] == "COMPLETED"
    assert task["SourceArn"] == arn_of(sqs, dlq)
    assert task["ApproximateNumberOfMessagesMoved"] == 1
    assert task["ApproximateNumberOfMessagesToMove"] == 1
    assert task["StartedTimestamp"] > 0
    assert "TaskHandle" not in task and "DestinationArn" not in task
    [back] = sqs.receive_message(QueueUrl=source, AttributeNames=["All"])["Messages"]
    assert back["Body"] == "poison"
    assert count(sqs, dlq) == 0


def test_move_to_an_explicit_destination_at_a_rate(sqs: Any, names: Names) -> None:
    source, dlq = with_dead_letters(sqs, names, max_receives=1)
    other = sqs.create_queue(QueueName=names("elsewhere"))["QueueUrl"]
    sqs.send_message_batch(QueueUrl=source, Entries=[
        {"Id": str(i), "MessageBody": str(i)} for i in range(3)])
    for _ in range(6):
        sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert count(sqs, dlq) == 3
    sqs.start_message_move_task(SourceArn=arn_of(sqs, dlq), DestinationArn=arn_of(sqs, other),
                                MaxNumberOfMessagesPerSecond=100)
    task = wait_for_task(sqs, arn_of(sqs, dlq))
    assert task["Status"] == "COMPLETED"
    assert task["DestinationArn"] == arn_of(sqs, other)
    assert task["MaxNumberOfMessagesPerSecond"] == 100
    assert count(sqs, other) == 3 and count(sqs, source) == 0


def test_cancel_a_running_move_task(sqs: Any, names: Names) -> None:
    source, dlq = with_dead_letters(sqs, names, max_receives=1)
    sqs.send_message_batch(QueueUrl=source, Entries=[
        {"Id": str(i), "MessageBody": str(i)} for i in range(10)])
    for _ in range(12):
        sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert count(sqs, dlq) == 10
    handle = sqs.start_message_move_task(SourceArn=arn_of(sqs, dlq),
                                         MaxNumberOfMessagesPerSecond=1)["TaskHandle"]
    [running] = sqs.list_message_move_tasks(SourceArn=arn_of(sqs, dlq))["Results"]
    assert running["Status"] == "RUNNING" and running["TaskHandle"] == handle
    with pytest.raises(ClientError):  # one task at a time per queue
        sqs.start_message_move_task(SourceArn=arn_of(sqs, dlq))
    moved = sqs.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"]
    assert moved < 10
    [task] = sqs.list_message_move_tasks(SourceArn=arn_of(sqs, dlq), MaxResults=10)["Results"]
    assert task["Status"] == "CANCELLED"
    with pytest.raises(ClientError):  # no longer running
        sqs.cancel_message_move_task(TaskHandle=handle)


def test_move_task_errors(sqs: Any, names: Names, queue: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.cancel_message_move_task(TaskHandle="no-such-task")
    assert error_of(exc)[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:  # not anyone's dead-letter queue
        sqs.start_message_move_task(SourceArn=arn_of(sqs, queue))
    assert error_of(exc)[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        sqs.start_message_move_task(SourceArn="not-an-arn")
    assert error_of(exc)[0] == "InvalidParameterValue"
    with pytest.raises(sqs.exceptions.ResourceNotFoundException):
        sqs.start_message_move_task(SourceArn=arn_of(sqs, queue) + "-gone")
    with pytest.raises(ClientError) as exc:
        sqs.list_message_move_tasks(SourceArn=arn_of(sqs, queue), MaxResults=11)
    assert error_of(exc)[0] == "InvalidParameterValue"
    assert sqs.list_message_move_tasks(SourceArn=arn_of(sqs, queue)).get("Results", []) == []


def test_a_move_task_needs_a_configured_dead_letter_queue(sqs: Any, names: Names) -> None:
    """As AWS: a source no queue's RedrivePolicy names is InvalidParameterValue "Source
    queue must be configured as a Dead Letter Queue.", with a DestinationArn too and once
    its sources are deleted; nothing moves and no task is listed."""
    source, dlq = with_dead_letters(sqs, names, max_receives=1)
    plain = sqs.create_queue(QueueName=names("plain"))["QueueUrl"]
    sqs.send_message(QueueUrl=plain, MessageBody="stays")
    sqs.send_message(QueueUrl=source, MessageBody="dead")
    for _ in range(2):
        sqs.receive_message(QueueUrl=source, VisibilityTimeout=0)
    assert count(sqs, dlq) == 1
    sqs.delete_queue(QueueUrl=source)
    for given in ({"SourceArn": arn_of(sqs, plain)},
                  {"SourceArn": arn_of(sqs, plain), "DestinationArn": arn_of(sqs, dlq)},
                  {"SourceArn": arn_of(sqs, dlq)},
                  {"SourceArn": arn_of(sqs, dlq), "DestinationArn": arn_of(sqs, plain)}):
        with pytest.raises(ClientError) as exc:
            sqs.start_message_move_task(**given)
        code, _, status = error_of(exc)
        assert (code, status) == ("InvalidParameterValue", 400)
        assert exc.value.response["Error"]["Message"] == \
            "Source queue must be configured as a Dead Letter Queue."
    assert (count(sqs, plain), count(sqs, dlq)) == (1, 1)
    assert sqs.list_message_move_tasks(SourceArn=arn_of(sqs, dlq)).get("Results", []) == []


def test_a_move_task_into_a_fifo_queue_or_onto_itself_is_refused(sqs: Any,
                                                                 names: Names) -> None:
    """A standard dead-letter queue into a FIFO DestinationArn moved messages without a
    group id, which the FIFO queue never delivered: UnsupportedOperation now (AWS: FIFO
    queues don't support redrive). A DestinationArn that is the SourceArn is
    InvalidParameterValue. Nothing moves and no task is listed."""
    source, dlq = with_dead_letters(sqs, names, max_receives=1)
    sqs.send_message(QueueUrl=source, MessageBody="dead")
    for _ in range(2):
        sqs.receive_message(QueueUrl=source, VisibilityTimeout=0)
    assert count(sqs, dlq) == 1
    fifo = sqs.create_queue(QueueName=names("dest.fifo"),
                            Attributes={"FifoQueue": "true"})["QueueUrl"]
    with pytest.raises(ClientError) as exc:
        sqs.start_message_move_task(SourceArn=arn_of(sqs, dlq),
                                    DestinationArn=arn_of(sqs, fifo))
    code, _, status = error_of(exc)  # AWS's JSON shape of UnsupportedOperation
    assert (code, status) == ("AWS.SimpleQueueService.UnsupportedOperation", 400)
    assert "FIFO" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        sqs.start_message_move_task(SourceArn=arn_of(sqs, dlq),
                                    DestinationArn=arn_of(sqs, dlq))
    assert (error_of(exc)[0], error_of(exc)[2]) == ("InvalidParameterValue", 400)
    assert (count(sqs, dlq), count(sqs, fifo), count(sqs, source)) == (1, 0, 0)
    assert sqs.list_message_move_tasks(SourceArn=arn_of(sqs, dlq)).get("Results", []) == []
