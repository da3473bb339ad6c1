"""Message actions through boto3 against a live endpoint: send, receive, delete, visibility,
long polling, limits and the digests SDKs verify."""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.sqs.test_queues import error_of


def aws_attribute_md5(attributes: dict[str, dict[str, Any]]) -> str:
    """MD5OfMessageAttributes as the AWS SDKs recompute it from a received message."""
    digest = hashlib.md5()

    def field(data: bytes) -> None:
        digest.update(struct.pack(">I", len(data)) + data)

    for name in sorted(attributes):
        item = attributes[name]
        field(name.encode())
        field(item["DataType"].encode())
        if "BinaryValue" in item:
            digest.update(b"\x02")
            field(item["BinaryValue"])
        else:
            digest.update(b"\x01")
            field(item["StringValue"].encode())
    return digest.hexdigest()


ATTRIBUTES = {
    "text": {"DataType": "String", "StringValue": "héllo"},
    "count": {"DataType": "Number.int", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01binary\xff"},
}


def test_send_receive_delete_round_trip(sqs: Any, queue: str) -> None:
    body = "Hello, wörld ✓ \U0001f600\r\n\t"
    sent = sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=ATTRIBUTES)
    assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == aws_attribute_md5(ATTRIBUTES)
    got = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"],
                              MessageSystemAttributeNames=["All"])["Messages"]
    assert len(got) == 1
    message = got[0]
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == body
    assert message["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert message["MessageAttributes"] == ATTRIBUTES
    assert message["MD5OfMessageAttributes"] == aws_attribute_md5(
        message["MessageAttributes"])
    system = message["Attributes"]
    assert system["ApproximateReceiveCount"] == "1"
    assert system["SenderId"] == "000000000000"
    now_ms = time.time() * 1000
    assert abs(int(system["SentTimestamp"]) - now_ms) < 60_000
    assert int(system["ApproximateFirstReceiveTimestamp"]) >= int(system["SentTimestamp"])
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    counts = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == "0"
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_receive_selects_attributes(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="x", MessageAttributes={
        "app.a": {"DataType": "String", "StringValue": "1"},
        "app.b": {"DataType": "String", "StringValue": "2"},
        "other": {"DataType": "String", "StringValue": "3"}})
    [plain] = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"]
    assert "MessageAttributes" not in plain and "Attributes" not in plain
    assert "MD5OfMessageAttributes" not in plain
    [some] = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0,
                                 MessageAttributeNames=["app.*"],
                                 AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert set(some["MessageAttributes"]) == {"app.a", "app.b"}
    assert some["MD5OfMessageAttributes"] == aws_attribute_md5(some["MessageAttributes"])
    assert some["Attributes"] == {"ApproximateReceiveCount": "2"}
    [exact] = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0,
                                  MessageAttributeNames=["other"])["Messages"]
    assert set(exact["MessageAttributes"]) == {"other"}
    # A prefix is the name before ".*", dot or not: "ot.*" asks for "other" too.
    [prefixed] = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["ot.*", "ap.*"])[
        "Messages"]
    assert set(prefixed["MessageAttributes"]) == {"app.a", "app.b", "other"}


def test_batch_send_receive_delete(sqs: Any, queue: str) -> None:
    entries = [{"Id": f"m{i}", "MessageBody": f"body {i}"} for i in range(10)]
    sent = sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    assert [e["Id"] for e in sent["Successful"]] == [e["Id"] for e in entries]
    assert "Failed" not in sent or sent["Failed"] == []
    for entry, result in zip(entries, sent["Successful"], strict=True):
        assert result["MD5OfMessageBody"] == hashlib.md5(
            entry["MessageBody"].encode()).hexdigest()
    received: list[dict[str, Any]] = []
    while len(received) < 10:
        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages")
        assert batch, "messages went missing"
        received += batch
    assert sorted(m["Body"] for m in received) == sorted(e["MessageBody"] for e in entries)
    deleted = sqs.delete_message_batch(QueueUrl=queue, Entries=[
        {"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)])
    assert len(deleted["Successful"]) == 10


def test_send_batch_reports_bad_entries_and_sends_the_rest(sqs: Any, queue: str) -> None:
    result = sqs.send_message_batch(QueueUrl=queue, Entries=[
        {"Id": "good", "MessageBody": "fine"},
        {"Id": "badchar", "MessageBody": "bell \x07"},
        {"Id": "baddelay", "MessageBody": "late", "DelaySeconds": 901},
        {"Id": "badattr", "MessageBody": "x", "MessageAttributes": {
            "AWS.reserved": {"DataType": "String", "StringValue": "v"}}},
        {"Id": "badnumber", "MessageBody": "x", "MessageAttributes": {
            "n": {"DataType": "Number", "StringValue": "twelve"}}},
        {"Id": "good2", "MessageBody": "fine too"},
    ])
    assert [e["Id"] for e in result["Successful"]] == ["good", "good2"]
    failed = {e["Id"]: e for e in result["Failed"]}
    assert set(failed) == {"badchar", "baddelay", "badattr", "badnumber"}
    assert failed["badchar"]["Code"] == "InvalidMessageContents"
    assert failed["baddelay"]["Code"] == "InvalidParameterValue"
    assert all(e["SenderFault"] for e in failed.values())
    bodies = sorted(m["Body"] for m in sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10)["Messages"])
    assert bodies == ["fine", "fine too"]


@pytest.mark.parametrize(("entries", "code"), [
    ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
    ([{"Id": str(i), "MessageBody": "x"} for i in range(11)],
     "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
    ([{"Id": "same", "MessageBody": "x"}, {"Id": "same", "MessageBody": "y"}],
     "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
    ([{"Id": "not valid!", "MessageBody": "x"}],
     "AWS.SimpleQueueService.InvalidBatchEntryId"),
    ([{"Id": "x" * 81, "MessageBody": "x"}], "AWS.SimpleQueueService.InvalidBatchEntryId"),
    ([{"Id": str(i), "MessageBody": "x" * 200_000} for i in range(6)],
     "AWS.SimpleQueueService.BatchRequestTooLong"),
])
def test_send_batch_request_errors(sqs: Any, queue: str, entries: list[dict[str, Any]],
                                   code: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    assert error_of(exc)[0] == code


def test_delete_and_visibility_batch_request_errors(sqs: Any, queue: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.delete_message_batch(QueueUrl=queue, Entries=[
            {"Id": "a", "ReceiptHandle": "h"}, {"Id": "a", "ReceiptHandle": "h"}])
    assert error_of(exc)[0] == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    with pytest.raises(ClientError) as exc:
        sqs.change_message_visibility_batch(QueueUrl=queue, Entries=[
            {"Id": str(i), "ReceiptHandle": "h", "VisibilityTimeout": 1} for i in range(11)])
    assert error_of(exc)[0] == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"MessageBody": "bell \x07"}, "InvalidMessageContents"),
    ({"MessageBody": "surrogate-free but \ufffe"}, "InvalidMessageContents"),
    ({"MessageBody": "x", "DelaySeconds": 901}, "InvalidParameterValue"),
    ({"MessageBody": "x", "MessageAttributes": {
        "a": {"DataType": "Strange", "StringValue": "v"}}}, "InvalidParameterValue"),
    ({"MessageBody": "x", "MessageAttributes": {
        "a": {"DataType": "Binary", "StringValue": "v"}}}, "InvalidParameterValue"),
    ({"MessageBody": "x", "MessageAttributes": {
        f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}},
     "InvalidParameterValue"),
    ({"MessageBody": "x", "MessageDeduplicationId": "d"}, "InvalidParameterValue"),
    ({"MessageBody": ""}, "MissingParameter"),
])
def test_send_errors(sqs: Any, queue: str, kwargs: dict[str, Any], code: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=queue, **kwargs)
    assert error_of(exc)[0] == code


def test_body_size_limit_follows_maximum_message_size(sqs: Any, queue: str) -> None:
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"MaximumMessageSize": "1024"})
    sqs.send_message(QueueUrl=queue, MessageBody="x" * 1024)
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=queue, MessageBody="x" * 1025)
    assert error_of(exc)[0] == "InvalidParameterValue"


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"MaxNumberOfMessages": 0}, "InvalidParameterValue"),
    ({"MaxNumberOfMessages": 11}, "InvalidParameterValue"),
    ({"WaitTimeSeconds": 21}, "InvalidParameterValue"),
    ({"VisibilityTimeout": 43_201}, "InvalidParameterValue"),
])
def test_receive_limits(sqs: Any, queue: str, kwargs: dict[str, Any], code: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.receive_message(QueueUrl=queue, **kwargs)
    assert error_of(exc)[0] == code


def test_receipt_handles(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="x")
    [first] = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"]
    [second] = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert first["ReceiptHandle"] != second["ReceiptHandle"]
    assert second.get("Attributes", True)
    # a stale handle "succeeds" and deletes nothing, as in SQS
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"])
    assert sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "ApproximateNumberOfMessagesNotVisible"])["Attributes"][
        "ApproximateNumberOfMessagesNotVisible"] == "1"
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as exc:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle="garbage")
    assert error_of(exc)[0] == "ReceiptHandleIsInvalid"
    result = sqs.delete_message_batch(QueueUrl=queue, Entries=[
        {"Id": "ok", "ReceiptHandle": second["ReceiptHandle"]},
        {"Id": "bad", "ReceiptHandle": "garbage"}])
    assert [e["Id"] for e in result["Successful"]] == ["ok"]
    assert [(e["Id"], e["Code"]) for e in result["Failed"]] == [
        ("bad", "ReceiptHandleIsInvalid")]


def test_change_visibility(sqs: Any, queue: str) -> None:
    sqs.send_message_batch(QueueUrl=queue, Entries=[
        {"Id": "a", "MessageBody": "a"}, {"Id": "b", "MessageBody": "b"}])
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    while len(got) < 2:
        got += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    # release one (a nack), extend the other
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=got[0]["ReceiptHandle"],
                                  VisibilityTimeout=0)
    [again] = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert again["MessageId"] == got[0]["MessageId"]
    assert again.get("Attributes", True)
    result = sqs.change_message_visibility_batch(QueueUrl=queue, Entries=[
        {"Id": "again", "ReceiptHandle": again["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "other", "ReceiptHandle": got[1]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "stale", "ReceiptHandle": got[0]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "bad", "ReceiptHandle": "garbage", "VisibilityTimeout": 0}])
    assert sorted(e["Id"] for e in result["Successful"]) == ["again", "other"]
    codes = {e["Id"]: e["Code"] for e in result["Failed"]}
    # AWS: a handle whose lease is over names no message available for a change.
    assert codes == {"stale": "InvalidParameterValue", "bad": "ReceiptHandleIsInvalid"}
    with pytest.raises(ClientError) as exc:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=got[0]["ReceiptHandle"],
                                      VisibilityTimeout=10)
    assert error_of(exc)[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=again["ReceiptHandle"],
                                      VisibilityTimeout=43_201)
    assert error_of(exc)[0] == "InvalidParameterValue"


def test_delayed_messages(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="later", DelaySeconds=900)
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)


def test_long_poll_waits_then_answers_empty(sqs: Any, queue: str) -> None:
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)
    assert 0.9 <= time.monotonic() - started < 3


def test_queue_default_wait_applies(sqs: Any, queue: str) -> None:
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"ReceiveMessageWaitTimeSeconds": "1"})
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    assert time.monotonic() - started >= 0.9
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    assert time.monotonic() - started < 0.9


def test_posting_binary_as_bytes_and_base64_agree(sqs: Any, queue: str) -> None:
    raw = bytes(range(256))
    sent = sqs.send_message(QueueUrl=queue, MessageBody="b", MessageAttributes={
        "bin": {"DataType": "Binary.raw", "BinaryValue": raw}})
    [got] = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"]
    assert got["MessageAttributes"]["bin"] == {"DataType": "Binary.raw", "BinaryValue": raw}
    assert got["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert base64.b64encode(raw)  # boto3 encodes and decodes base64 on the wire
