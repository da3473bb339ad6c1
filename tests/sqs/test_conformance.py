"""Answers a third-party SQS conformance suite checks, compared with what AWS SQS sends."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

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


VALID_STATEMENT = {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"}


@pytest.mark.parametrize("policy", [
    "not json", "[1]", '"text"', "null", "{}",
    json.dumps({"Version": "2012-10-17"}),                       # no statement
    json.dumps({"Version": "2012-10-17", "Statement": []}),      # what SQS refuses too
    json.dumps({"Version": "2012-10-17", "Statement": "x"}),
    json.dumps({"Version": "2020-01-01", "Statement": [VALID_STATEMENT]}),
    json.dumps({"Statement": [VALID_STATEMENT], "Extra": 1}),
    json.dumps({"Statement": [{**VALID_STATEMENT, "Effect": "Maybe"}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*"}]}),  # no Action
    json.dumps({"Statement": [{"Effect": "Allow", "Action": "sqs:*"}]}),  # no Principal
    json.dumps({"Statement": [{**VALID_STATEMENT, "Bogus": True}]}),
])
def test_an_invalid_policy_is_refused_not_stored(sqs: Any, queue: str, names: Names,
                                                 policy: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": policy})
    assert exc.value.response["Error"]["Code"] == "InvalidAttributeValue"
    assert exc.value.response["Error"]["Message"] == "Invalid value for the parameter Policy."
    got = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])
    assert "Policy" not in got.get("Attributes", {})
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName=names("pol"), Attributes={"Policy": policy})
    assert exc.value.response["Error"]["Code"] == "InvalidAttributeValue"


@pytest.mark.parametrize("policy", [
    {"Version": "2012-10-17", "Id": "test", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "*"}]},
    {"Version": "2008-10-17", "Statement": {
        "Sid": "one", "Effect": "Deny", "NotPrincipal": {"AWS": ["arn:aws:iam::1:root"]},
        "NotAction": ["sqs:DeleteMessage"], "Resource": "arn:aws:sqs:us-east-1:0:q"}},
    {"Statement": [{"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage", "Resource": "*",
                    "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:x"}}}]},
])
def test_a_valid_policy_is_kept(sqs: Any, queue: str, policy: dict[str, Any]) -> None:
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": json.dumps(policy)})
    got = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])["Attributes"]
    assert json.loads(got["Policy"]) == policy
