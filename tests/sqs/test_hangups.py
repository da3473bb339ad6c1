"""An SQS long poll whose client has gone leases nothing (see tests/http/test_hangups.py)."""

from __future__ import annotations

from typing import Any

import orjson

from tests.sqs.server import SqsServer
from tests.support.hangup import abandon


def test_an_sqs_long_poll_whose_client_left_leases_nothing(sqs: Any, names: Any,
                                                         sqs_server: SqsServer) -> None:
    dlq = sqs.create_queue(QueueName=names("dlq"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName=names("q"), Attributes={"RedrivePolicy": orjson.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": 1}).decode()})["QueueUrl"]
    abandon(sqs_server.endpoint, "/", orjson.dumps({"QueueUrl": queue, "WaitTimeSeconds": 20}),
            {"Content-Type": "application/x-amz-json-1.0",
             "X-Amz-Target": "AmazonSQS.ReceiveMessage"})
    sqs.send_message(QueueUrl=queue, MessageBody="x")
    got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5,
                              AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in got] == [
        ("x", "1")]
    assert sqs.receive_message(QueueUrl=dlq).get("Messages", []) == []
