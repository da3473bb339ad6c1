"""A HEAD on the SQS endpoint is a 405 and does nothing: a GET there may be a query-protocol
ReceiveMessage, and a HEAD served as that GET (Starlette routes one to a GET's handler)
leased the message to nobody, dead-lettering it at `maxReceiveCount` 1."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.sqs.server import SqsServer


def test_a_head_leases_nothing(sqs: Any, names: Any, sqs_server: SqsServer) -> None:
    dlq = sqs.create_queue(QueueName=names("dlq"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName=names("q"), Attributes={"RedrivePolicy": orjson.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": 1}).decode()})["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="x")
    head = httpx.head(queue, params={"Action": "ReceiveMessage", "VisibilityTimeout": "0"})
    assert head.status_code == 405 and head.content == b""
    assert head.headers["allow"] == "GET, POST"
    got = sqs.receive_message(QueueUrl=queue, AttributeNames=["ApproximateReceiveCount"])
    assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"])
            for m in got["Messages"]] == [("x", "1")]
