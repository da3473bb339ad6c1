"""The SQS endpoint fed bad input: malformed JSON, wrong content types, unknown actions,
huge and non-UTF-8 bodies, members of the wrong type. Every answer is an AWS-shaped 4xx
(a JSON `__type` or an XML `ErrorResponse`), never a 5xx; the server keeps serving.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.sqs.app import HANDLERS
from tests.sqs.server import SqsServer

JSON_TYPE = "application/x-amz-json-1.0"
FORM_TYPE = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SqsServer, str]]:
    """A live endpoint on SQLite, with one queue; (server, queue URL)."""
    path: Path = tmp_path_factory.mktemp("sqs-bad") / "conveyor.db"
    server = SqsServer(f"sqlite:///{path}")
    try:
        answer = httpx.post(server.endpoint, content=b'{"QueueName": "bad"}', headers={
            "content-type": JSON_TYPE, "x-amz-target": "AmazonSQS.CreateQueue"})
        yield server, answer.json()["QueueUrl"]
    finally:
        server.close()


@pytest.fixture(scope="module")
def http(endpoint: tuple[SqsServer, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=endpoint[0].endpoint, timeout=30) as client:
        yield client


def assert_aws_4xx(response: httpx.Response, code: str | None = None) -> str:
    """The answer is a 4xx in AWS's shape for its protocol; returns the error code."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if response.headers.get("content-type", "").startswith("application/x-amz-json"):
        found = response.json()["__type"].split("#")[-1]
        assert response.headers.get("x-amzn-query-error", "").endswith(";Sender")
    else:
        text = response.text
        assert "<ErrorResponse" in text and "<Type>Sender</Type>" in text, text[:500]
        found = text.split("<Code>")[1].split("</Code>")[0]
    if code is not None:
        assert found == code, (found, response.text[:300])
    return found


def post_json(http: httpx.Client, action: str, body: bytes | str,
              content_type: str = JSON_TYPE) -> httpx.Response:
    return http.post("/", content=body, headers={
        "content-type": content_type, "x-amz-target": f"AmazonSQS.{action}"})


@pytest.mark.parametrize("body", [
    b"", b"{", b"{]", b"nul", b'{"QueueName": }', b"[1, 2]", b"42", b'"text"', b"null",
    b'{"a": NaN}', b'{"a": 1e99999}', b"[" * 100_000 + b"]" * 100_000,
    b"\xff\xfe{\x00", b'{"QueueName": "\xc3\x28"}', b'\xef\xbb\xbf{"QueueName": "x"}',
], ids=lambda b: repr(b[:12]))
def test_malformed_json_is_a_4xx(http: httpx.Client, body: bytes) -> None:
    assert_aws_4xx(post_json(http, "GetQueueUrl", body))


@pytest.mark.parametrize("target", [
    "", "AmazonSQS.", "AmazonSQS.Nope", "AmazonSNS.Publish", "AmazonSQS.sendmessage",
    "AmazonSQS." + "X" * 10_000, "AmazonSQS.__init__",
])
def test_unknown_json_targets_are_invalid_action(http: httpx.Client, target: str) -> None:
    response = http.post("/", content=b"{}", headers={
        "content-type": JSON_TYPE, "x-amz-target": target.encode("latin-1", "replace")})
    assert_aws_4xx(response, "InvalidAction")


@pytest.mark.parametrize("query", [
    "", "Action=", "Action=Nope", "Action=SendMessage\x00", "Version=2012-11-05",
    "Action=" + "A" * 50_000, "Action=%FF%FE",
])
def test_unknown_query_actions_are_invalid_action(http: httpx.Client, query: str) -> None:
    assert_aws_4xx(http.post("/", content=query.encode(), headers={"content-type": FORM_TYPE}),
                   "InvalidAction")


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/json", "application/xml", "multipart/form-data; boundary=x",
    "", "application/x-amz-json-9.9", "application/x-amz-json-1.0; charset=latin-1",
])
def test_wrong_content_types_are_4xx(http: httpx.Client, content_type: str) -> None:
    response = post_json(http, "ListQueues", b'{"not": "form"} \xff', content_type)
    assert 400 <= response.status_code < 500 or response.status_code == 200, response.text
    if response.status_code != 200:
        assert_aws_4xx(response)


def test_non_utf8_form_values_are_refused(http: httpx.Client,
                                          endpoint: tuple[SqsServer, str]) -> None:
    url = endpoint[1]
    for body in (b"Action=SendMessage&QueueUrl=" + url.encode() + b"&MessageBody=%FF%FE%FD",
                 b"Action=SendMessage&QueueUrl=" + url.encode() + b"&MessageBody=\xff\xfe",
                 b"Action=GetQueueUrl&QueueName=%C3%28",
                 b"Action=SendMessage&QueueUrl=" + url.encode() + b"&MessageBody=%00"):
        assert_aws_4xx(http.post("/", content=body, headers={"content-type": FORM_TYPE}))


def test_non_utf8_json_strings_are_refused(http: httpx.Client,
                                           endpoint: tuple[SqsServer, str]) -> None:
    body = b'{"QueueUrl": "' + endpoint[1].encode() + b'", "MessageBody": "\xff\xfe"}'
    assert_aws_4xx(post_json(http, "SendMessage", body))
    lone = json.dumps({"QueueUrl": endpoint[1], "MessageBody": "a\ud800b"}).encode()
    assert_aws_4xx(post_json(http, "SendMessage", lone))


def test_bodies_over_the_request_limit_are_413(http: httpx.Client) -> None:
    big = b"Action=ListQueues&Pad=" + b"z" * (11 * 1024 * 1024)
    answer = http.post("/", content=big, headers={"content-type": FORM_TYPE})
    assert answer.status_code == 413
    assert "RequestEntityTooLarge" in answer.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: read until over the limit
        yield b"Action=ListQueues&Pad="
        for _ in range(12):
            yield b"z" * (1024 * 1024)

    answer = http.post("/", content=chunks(), headers={"content-type": FORM_TYPE})
    assert answer.status_code == 413


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 8 * 1024 * 1024])
def test_huge_bodies_are_refused(http: httpx.Client, endpoint: tuple[SqsServer, str],
                                 size: int) -> None:
    body = json.dumps({"QueueUrl": endpoint[1], "MessageBody": "x" * size}).encode()
    assert_aws_4xx(post_json(http, "SendMessage", body))
    form = b"Action=SendMessage&MessageBody=" + b"y" * size
    assert_aws_4xx(http.post(endpoint[1], content=form, headers={"content-type": FORM_TYPE}))


def test_huge_batches_and_many_members_are_refused(http: httpx.Client,
                                                   endpoint: tuple[SqsServer, str]) -> None:
    entries = [{"Id": f"e{i}", "MessageBody": "x"} for i in range(5000)]
    body = json.dumps({"QueueUrl": endpoint[1], "Entries": entries})
    assert_aws_4xx(post_json(http, "SendMessageBatch", body), "TooManyEntriesInBatchRequest")
    form = "&".join(f"Attribute.{i}.Name=A{i}&Attribute.{i}.Value=1" for i in range(1, 3000))
    assert_aws_4xx(http.post("/", content=f"Action=CreateQueue&QueueName=zz&{form}".encode(),
                             headers={"content-type": FORM_TYPE}))
    deep = "Action=CreateQueue&QueueName=zz&" + "Attribute." * 2000 + "1.Name=x"
    assert_aws_4xx(http.post("/", content=deep.encode(), headers={"content-type": FORM_TYPE}))


# Any JSON value in any member of any action: never a 5xx.
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(["", "-1", "0", "99999999999", "bad", "1.5"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=10)
_members = st.sampled_from([
    "QueueUrl", "QueueName", "MessageBody", "Entries", "Attributes", "AttributeNames",
    "MaxNumberOfMessages", "WaitTimeSeconds", "VisibilityTimeout", "ReceiptHandle",
    "DelaySeconds", "MessageAttributes", "MessageGroupId", "MessageDeduplicationId",
    "Tags", "TagKeys", "SourceArn", "TaskHandle", "MaxResults", "NextToken",
    "QueueNamePrefix", "MessageSystemAttributeNames", "Label", "AWSAccountIds", "Actions",
    "ReceiveRequestAttemptId", "MaxNumberOfMessagesPerSecond", "DestinationArn"])


@given(action=st.sampled_from(sorted(HANDLERS)),
       members=st.dictionaries(_members, _json_values, max_size=5),
       real_queue=st.booleans())
@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_random_members_never_5xx(http: httpx.Client, endpoint: tuple[SqsServer, str],
                                  action: str, members: dict[str, Any],
                                  real_queue: bool) -> None:
    if real_queue and action not in ("DeleteQueue", "PurgeQueue"):
        members["QueueUrl"] = endpoint[1]
    if "WaitTimeSeconds" in members:
        members["WaitTimeSeconds"] = 0
    response = post_json(http, action, json.dumps(members))
    assert response.status_code < 500, (action, members, response.text[:500])
    if response.status_code >= 400:
        assert_aws_4xx(response)


def test_server_still_serves(http: httpx.Client) -> None:
    response = post_json(http, "ListQueues", b"{}")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", ["a\x00b", "a\udc80", "ok\n", "x" * 81, " ", "q.fifo.fifo"])
def test_impossible_queue_names_are_not_found(http: httpx.Client, name: str) -> None:
    body = json.dumps({"QueueName": name}).encode("utf-8", "surrogatepass")
    response = post_json(http, "GetQueueUrl", body)
    assert_aws_4xx(response)


# Integers spelled with digits `int()` refuses (`²`, `①`), doubled signs, underscores,
# non-ASCII digits and more digits than `int()` reads: each used to pass a `str.isdigit`
# check and then raise ValueError in `int()`, a 500 (conveyor.digits).
ODD_NUMBERS = ["\u00b2", "\u2460", "--5", "+-5", "1_0", "\u0663", "9" * 5000, "-" + "9" * 5000]
DLQ_ARN = "arn:aws:sqs:us-east-1:000000000000:bad"
ODD_MEMBERS: dict[str, tuple[str, Any]] = {
    "visibility": ("CreateQueue", lambda n, url: {
        "QueueName": "odd-numbers", "Attributes": {"VisibilityTimeout": n}}),
    "redrive": ("CreateQueue", lambda n, url: {"QueueName": "odd-numbers", "Attributes": {
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": n})}}),
    "set-delay": ("SetQueueAttributes", lambda n, url: {
        "QueueUrl": url, "Attributes": {"DelaySeconds": n}}),
    "max-messages": ("ReceiveMessage", lambda n, url: {
        "QueueUrl": url, "MaxNumberOfMessages": n, "WaitTimeSeconds": 0}),
    "wait": ("ReceiveMessage", lambda n, url: {"QueueUrl": url, "WaitTimeSeconds": n}),
    "send-delay": ("SendMessage", lambda n, url: {
        "QueueUrl": url, "MessageBody": "x", "DelaySeconds": n}),
    "change-visibility": ("ChangeMessageVisibility", lambda n, url: {
        "QueueUrl": url, "ReceiptHandle": "x", "VisibilityTimeout": n}),
}


@pytest.mark.parametrize("number", ODD_NUMBERS, ids=lambda n: repr(n[:8]))
@pytest.mark.parametrize("member", sorted(ODD_MEMBERS))
def test_oddly_spelled_integers_are_4xx_and_change_nothing(
        http: httpx.Client, endpoint: tuple[SqsServer, str], member: str, number: str) -> None:
    action, members = ODD_MEMBERS[member]
    assert_aws_4xx(post_json(http, action, json.dumps(members(number, endpoint[1]))))
    assert post_json(http, "GetQueueUrl", b'{"QueueName": "odd-numbers"}').status_code == 400
    attributes = post_json(http, "GetQueueAttributes", json.dumps(
        {"QueueUrl": endpoint[1], "AttributeNames": ["DelaySeconds"]})).json()
    assert attributes["Attributes"]["DelaySeconds"] == "0"


@pytest.mark.parametrize("index", ["\u00b2", "\u0663", "1_0", " 1"])
def test_query_list_indexes_must_be_ascii_numbers(http: httpx.Client,
                                                  endpoint: tuple[SqsServer, str],
                                                  index: str) -> None:
    form = {"Action": "SetQueueAttributes", "QueueUrl": endpoint[1],
            f"Attribute.{index}.Name": "DelaySeconds", f"Attribute.{index}.Value": "7"}
    response = http.post("/", data=form)
    assert response.status_code < 500, response.text[:300]
    attributes = post_json(http, "GetQueueAttributes", json.dumps(
        {"QueueUrl": endpoint[1], "AttributeNames": ["DelaySeconds"]})).json()
    assert attributes["Attributes"]["DelaySeconds"] == "0"
