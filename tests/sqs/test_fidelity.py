"""AWS behaviours beyond the error table: attributes infrastructure tools set, permissions,
FIFO sends and receive retries, system attributes, stale receipt handles, move-task counts
and the 60-second waits (and their relaxed mode)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.sqs.conftest import BOTO_CONFIG, CREDENTIALS
from tests.sqs.server import SqsServer

Names = Callable[[str], str]
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "tf", "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage",
    "Resource": "*"}]})


def attributes(sqs: Any, url: str, *names: str) -> dict[str, str]:
    got: dict[str, str] = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=list(names) or ["All"]).get("Attributes", {})
    return got


def test_infrastructure_attributes_are_stored_and_returned(sqs: Any, names: Names) -> None:
    given = {"Policy": POLICY, "KmsMasterKeyId": "alias/aws/sqs",
             "KmsDataKeyReusePeriodSeconds": "600", "VisibilityTimeout": "45"}
    url = sqs.create_queue(QueueName=names("tf"), Attributes=given)["QueueUrl"]
    got = attributes(sqs, url)
    assert json.loads(got["Policy"]) == json.loads(POLICY)
    assert got["KmsMasterKeyId"] == "alias/aws/sqs"
    assert got["KmsDataKeyReusePeriodSeconds"] == "600"
    assert got["SqsManagedSseEnabled"] == "false"  # one encryption or the other
    # The same CreateQueue again (Terraform re-applying) answers the same URL.
    assert sqs.create_queue(QueueName=url.rsplit("/", 1)[-1],
                            Attributes=given)["QueueUrl"] == url
    sqs.set_queue_attributes(QueueUrl=url, Attributes={
        "KmsMasterKeyId": "", "SqsManagedSseEnabled": "true", "Policy": ""})
    got = attributes(sqs, url)
    assert "Policy" not in got and "KmsMasterKeyId" not in got
    assert got["SqsManagedSseEnabled"] == "true"
    assert got["KmsDataKeyReusePeriodSeconds"] == "600"


def test_create_queue_again_with_the_same_redrive_policy(sqs: Any, names: Names) -> None:
    dlq = sqs.create_queue(QueueName=names("dlq"))["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": attributes(sqs, dlq, "QueueArn")["QueueArn"],
                         "maxReceiveCount": "5"})
    name = names("src")
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"]
    assert sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})[
        "QueueUrl"] == url


def test_get_queue_url_of_another_owner(sqs: Any, queue: str) -> None:
    name = queue.rsplit("/", 1)[-1]
    assert sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId="000000000000")[
        "QueueUrl"] == queue
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId="111122223333")


def test_a_new_queue_reports_sse_sqs(sqs: Any, queue: str) -> None:
    got = attributes(sqs, queue)
    assert got["SqsManagedSseEnabled"] == "true"
    assert "KmsMasterKeyId" not in got and "Policy" not in got


def test_policy_limit_is_8192_bytes(sqs: Any, queue: str) -> None:
    statement = json.loads(POLICY)["Statement"]
    big = json.dumps({"Version": "2012-10-17", "Id": "x" * 8200, "Statement": statement})
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": big})
    assert exc.value.response["Error"]["Code"] == "InvalidAttributeValue"
    fits = json.dumps({"Version": "2012-10-17", "Id": "x" * 8000, "Statement": statement})
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": fits})
    assert attributes(sqs, queue, "Policy")["Policy"] == fits


def test_add_and_remove_permission_edit_the_policy(sqs: Any, queue: str) -> None:
    arn = attributes(sqs, queue, "QueueArn")["QueueArn"]
    sqs.add_permission(QueueUrl=queue, Label="Senders", AWSAccountIds=["111122223333"],
                       Actions=["SendMessage"])
    sqs.add_permission(QueueUrl=queue, Label="Workers",
                       AWSAccountIds=["111122223333", "444455556666"],
                       Actions=["ReceiveMessage", "DeleteMessage"])
    policy = json.loads(attributes(sqs, queue, "Policy")["Policy"])
    assert policy["Id"] == f"{arn}/SQSDefaultPolicy"
    assert policy["Statement"] == [
        {"Sid": "Senders", "Effect": "Allow",
         "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
         "Action": "SQS:SendMessage", "Resource": arn},
        {"Sid": "Workers", "Effect": "Allow",
         "Principal": {"AWS": ["arn:aws:iam::111122223333:root",
                               "arn:aws:iam::444455556666:root"]},
         "Action": ["SQS:ReceiveMessage", "SQS:DeleteMessage"], "Resource": arn}]
    sqs.remove_permission(QueueUrl=queue, Label="Senders")
    policy = json.loads(attributes(sqs, queue, "Policy")["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["Workers"]
    sqs.remove_permission(QueueUrl=queue, Label="Workers")
    assert "Policy" not in attributes(sqs, queue)


def test_fifo_accepts_delay_zero(sqs: Any, names: Names) -> None:
    url = sqs.create_queue(QueueName=names("z.fifo"), Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g", DelaySeconds=0)
    result = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "b", "MessageBody": "b", "MessageGroupId": "g", "DelaySeconds": 0},
        {"Id": "c", "MessageBody": "c", "MessageGroupId": "g", "DelaySeconds": 3}])
    assert [e["Id"] for e in result["Successful"]] == ["b"]
    assert [(e["Id"], e["Code"]) for e in result["Failed"]] == [("c", "InvalidParameterValue")]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["a", "b"]


def test_receive_request_attempt_id_replays_the_batch(sqs: Any, names: Names) -> None:
    url = sqs.create_queue(QueueName=names("r.fifo"), Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "MessageBody": f"m{i}", "MessageGroupId": f"g{i}"} for i in range(4)])
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2,
                                ReceiveRequestAttemptId="try-1")["Messages"]
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2,
                                ReceiveRequestAttemptId="try-1")["Messages"]
    assert [(m["MessageId"], m["ReceiptHandle"]) for m in again] == \
        [(m["MessageId"], m["ReceiptHandle"]) for m in first]
    other = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                ReceiveRequestAttemptId="try-2")["Messages"]
    assert {m["Body"] for m in other} == {"m2", "m3"}
    # Once a message of the batch is deleted, the attempt id no longer replays it.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                 ReceiveRequestAttemptId="try-1")


def test_trace_header_is_kept_and_returned(sqs: Any, queue: str) -> None:
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    sent = sqs.send_message(QueueUrl=queue, MessageBody="traced", MessageAttributes={
        "Custom.a": {"DataType": "String", "StringValue": "1"},
        "Custom.b": {"DataType": "Number", "StringValue": "2"},
        "other": {"DataType": "String", "StringValue": "3"}},
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String",
                                                    "StringValue": header}})
    assert sent["MD5OfMessageSystemAttributes"]
    [message] = sqs.receive_message(
        QueueUrl=queue, MessageSystemAttributeNames=["AWSTraceHeader", "SenderId"],
        MessageAttributeNames=["Custom.*"], VisibilityTimeout=0)["Messages"]
    assert message["Attributes"] == {"AWSTraceHeader": header, "SenderId": "000000000000"}
    assert set(message["MessageAttributes"]) == {"Custom.a", "Custom.b"}
    [message] = sqs.receive_message(QueueUrl=queue, AttributeNames=["All"],
                                    MessageAttributeNames=[".*"], VisibilityTimeout=0)[
        "Messages"]
    assert message["Attributes"]["AWSTraceHeader"] == header
    assert set(message["MessageAttributes"]) == {"Custom.a", "Custom.b", "other"}
    [message] = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["Nothing.*"],
                                    VisibilityTimeout=0)["Messages"]
    assert message["MessageAttributes"] == {} and "MD5OfMessageAttributes" not in message
    [message] = sqs.receive_message(QueueUrl=queue, MessageSystemAttributeNames=["All"],
                                    MessageAttributeNames=["All"])["Messages"]
    assert "AWS.TraceHeader" not in message["MessageAttributes"]
    assert {"SentTimestamp", "ApproximateReceiveCount", "AWSTraceHeader"} <= set(
        message["Attributes"])


def test_delete_with_an_older_receipt_handle_succeeds(sqs: Any, queue: str) -> None:
    sqs.send_message(QueueUrl=queue, MessageBody="twice")
    [old] = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"]
    [new] = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=30)["Messages"]
    assert old["ReceiptHandle"] != new["ReceiptHandle"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=old["ReceiptHandle"])  # succeeds
    result = sqs.delete_message_batch(QueueUrl=queue, Entries=[
        {"Id": "old", "ReceiptHandle": old["ReceiptHandle"]}])
    assert [e["Id"] for e in result["Successful"]] == ["old"]
    # As the DeleteMessage reference allows, the newer consumer's lease is kept ...
    assert attributes(sqs, queue, "ApproximateNumberOfMessagesNotVisible") == {
        "ApproximateNumberOfMessagesNotVisible": "1"}
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=new["ReceiptHandle"])  # ... until now
    assert attributes(sqs, queue, "ApproximateNumberOfMessagesNotVisible") == {
        "ApproximateNumberOfMessagesNotVisible": "0"}


def test_move_task_counts_messages_sent_straight_to_the_dlq(sqs: Any, names: Names) -> None:
    dlq = sqs.create_queue(QueueName=names("dlq"))["QueueUrl"]
    dlq_arn = attributes(sqs, dlq, "QueueArn")["QueueArn"]
    source = sqs.create_queue(QueueName=names("src"), Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})})["QueueUrl"]
    target = sqs.create_queue(QueueName=names("target"))["QueueUrl"]
    sqs.send_message_batch(QueueUrl=dlq, Entries=[
        {"Id": str(i), "MessageBody": f"direct {i}"} for i in range(3)])
    sqs.start_message_move_task(SourceArn=dlq_arn,
                                DestinationArn=attributes(sqs, target, "QueueArn")["QueueArn"])
    deadline = time.monotonic() + 10
    while True:
        [task] = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
        if task["Status"] == "COMPLETED" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert task["Status"] == "COMPLETED"
    assert task["ApproximateNumberOfMessagesToMove"] == 3
    assert task["ApproximateNumberOfMessagesMoved"] == 3
    assert attributes(sqs, target, "ApproximateNumberOfMessages") == {
        "ApproximateNumberOfMessages": "3"}
    assert source


def test_purge_and_delete_wait_60_seconds_by_default(sqs: Any, names: Names) -> None:
    name = names("wait")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.PurgeQueueInProgress):
        sqs.purge_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDeletedRecently):
        sqs.create_queue(QueueName=name)
    other = sqs.create_queue(QueueName=names("other"))["QueueUrl"]
    sqs.purge_queue(QueueUrl=other)  # the wait is per queue


@pytest.fixture(scope="module")
def relaxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server started with the relaxed option (SQLite), and a client of it."""
    path = tmp_path_factory.mktemp("relaxed") / "conveyor.db"
    server = SqsServer(f"sqlite:///{path}", relaxed=True)
    try:
        yield boto3.session.Session().client(
            "sqs", endpoint_url=server.endpoint, region_name="us-east-1", config=BOTO_CONFIG,
            **CREDENTIALS)
    finally:
        server.close()


def test_relaxed_mode_lifts_both_waits(relaxed: Any) -> None:
    url = relaxed.create_queue(QueueName="reused")["QueueUrl"]
    relaxed.send_message(QueueUrl=url, MessageBody="m")
    relaxed.purge_queue(QueueUrl=url)
    relaxed.purge_queue(QueueUrl=url)
    relaxed.delete_queue(QueueUrl=url)
    assert relaxed.create_queue(QueueName="reused")["QueueUrl"] == url
    assert "Messages" not in relaxed.receive_message(QueueUrl=url)
