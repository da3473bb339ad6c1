"""FIFO queues through the endpoint: group order, groups held while in flight, sequence
numbers, deduplication by id and by content."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.sqs.test_queues import error_of

Names = Callable[[str], str]


def fifo_queue(sqs: Any, names: Names, **attributes: str) -> str:
    return str(sqs.create_queue(QueueName=names("orders.fifo"), Attributes={
        "FifoQueue": "true", **attributes})["QueueUrl"])


def receive(sqs: Any, url: str, count: int = 10) -> list[dict[str, Any]]:
    # A fresh attempt id each time: the same one would replay the earlier answer.
    return list(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=count,
                                    MessageSystemAttributeNames=["All"],
                                    ReceiveRequestAttemptId=uuid.uuid4().hex
                                    ).get("Messages", []))


def test_fifo_send_rules(sqs: Any, names: Names) -> None:
    url = fifo_queue(sqs, names)
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
    assert error_of(exc)[0] == "MissingParameter"
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    assert error_of(exc)[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g",
                         MessageDeduplicationId="d", DelaySeconds=5)
    assert error_of(exc)[0] == "InvalidParameterValue"


def test_order_within_groups_and_sequence_numbers(sqs: Any, names: Names) -> None:
    url = fifo_queue(sqs, names)
    sent = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": f"{group}{i}", "MessageBody": f"{group}{i}", "MessageGroupId": group,
         "MessageDeduplicationId": f"{group}{i}"}
        for i in range(4) for group in ("a", "b")])["Successful"]
    sequences = [int(e["SequenceNumber"]) for e in sent]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    got = receive(sqs, url)
    by_group: dict[str, list[str]] = {}
    for message in got:
        by_group.setdefault(message["Attributes"]["MessageGroupId"], []).append(
            message["Body"])
    assert by_group == {"a": [f"a{i}" for i in range(4)], "b": [f"b{i}" for i in range(4)]}
    first = got[0]["Attributes"]
    assert first["MessageDeduplicationId"] == got[0]["Body"]
    assert first["SequenceNumber"].isdigit()
    assert receive(sqs, url) == []  # everything is in flight


def test_a_group_waits_while_its_message_is_in_flight(sqs: Any, names: Names) -> None:
    url = fifo_queue(sqs, names, ContentBasedDeduplication="true")
    for body, group in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group)
    [a1] = receive(sqs, url, 1)
    assert a1["Body"] == "a1"
    [b1] = receive(sqs, url, 1)
    assert b1["Body"] == "b1"  # a2 is held back behind a1
    assert receive(sqs, url) == []
    sqs.delete_message(QueueUrl=url, ReceiptHandle=a1["ReceiptHandle"])
    assert [m["Body"] for m in receive(sqs, url)] == ["a2"]


def test_deduplication(sqs: Any, names: Names) -> None:
    url = fifo_queue(sqs, names, ContentBasedDeduplication="true")
    first = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    again = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    assert again["MessageId"] == first["MessageId"]
    by_id = sqs.send_message(QueueUrl=url, MessageBody="other", MessageGroupId="g",
                             MessageDeduplicationId="explicit")
    repeat = sqs.send_message(QueueUrl=url, MessageBody="different body", MessageGroupId="g",
                              MessageDeduplicationId="explicit")
    assert repeat["MessageId"] == by_id["MessageId"]
    got = receive(sqs, url)
    assert [m["Body"] for m in got] == ["same", "other"]
    for message in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    # within the 5-minute window a repeat is accepted but not delivered, even after delete
    sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    assert receive(sqs, url) == []
