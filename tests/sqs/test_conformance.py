"""Answers a third-party SQS conformance suite checks, compared with what AWS SQS sends."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import httpx

from tests.sqs.server import SqsServer

Names = Callable[[str], str]
NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}


def test_an_empty_receive_has_no_messages_member(sqs: Any, queue: str,
                                                 sqs_server: SqsServer) -> None:
    """SQS answers a receive that found nothing with `{}` in JSON (no `Messages: []`): SDKs
    then leave the list unset, and suites assert `"Messages" not in response`."""
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1,
                                                 MaxNumberOfMessages=10)
    raw = httpx.post(sqs_server.endpoint, content=json.dumps({"QueueUrl": queue}), headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AmazonSQS.ReceiveMessage"})
    assert raw.status_code == 200 and raw.json() == {}
    xml = httpx.post(sqs_server.endpoint, data={"Action": "ReceiveMessage", "QueueUrl": queue})
    root = ET.fromstring(xml.content)
    result = root.find("sqs:ReceiveMessageResult", NS)
    assert result is not None and list(result) == []
    # One message: the list, as before.
    sqs.send_message(QueueUrl=queue, MessageBody="one")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=queue)["Messages"]] == ["one"]
