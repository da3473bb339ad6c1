"""A NUL in any string parameter of the SQS endpoint is InvalidParameterValue, on both
backends (PostgreSQL's text cannot hold one: ListQueues with a QueueNamePrefix of NUL was a
500 InternalError); a body keeps its own rule (InvalidMessageContents)."""

from __future__ import annotations

import httpx

from tests.sqs.test_query_protocol import NS, http, post  # noqa: F401 (the fixture)


def test_the_sqs_endpoint_refuses_a_nul_in_a_parameter(http: httpx.Client) -> None:  # noqa: F811
    status, doc = post(http, Action="ListQueues", QueueNamePrefix="\x00")
    assert status == 400
    assert doc.findtext(".//sqs:Code", namespaces=NS) == "InvalidParameterValue"
    assert "NUL" in (doc.findtext(".//sqs:Message", namespaces=NS) or "")
    status, doc = post(http, Action="GetQueueUrl", QueueName="a\x00")
    assert status == 400
    status, doc = post(http, Action="CreateQueue", QueueName="nul-body")
    url = doc.findtext(".//sqs:QueueUrl", namespaces=NS)
    assert status == 200 and url
    status, doc = post(http, Action="SendMessage", QueueUrl=url, MessageBody="a\x00")
    assert doc.findtext(".//sqs:Code", namespaces=NS) == "InvalidMessageContents"
