"""One test per row of `conveyor.sqs.texts.TEXTS`, over both wire protocols.

Each row's trigger makes the documented error happen through a real boto3 client (AWS
JSON 1.0, and botocore switched to the query protocol); the test checks AWS's code, the
HTTP status and the exact message text. A row without a trigger fails the suite.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from conveyor.sqs.texts import TEXTS
from tests.sqs.conftest import BOTO_CONFIG, CREDENTIALS
from tests.sqs.server import SqsServer
from tests.sqs.test_query_protocol import query_data_path  # noqa: F401  (a fixture)

Names = Callable[[str], str]
Values = dict[str, Any]
_ALLOW_FORMAT = ("Amazon SQS can't create the redrive allow policy, as it's in an "
                 "unsupported format.")


@dataclass
class Env:
    """What a trigger works with: a client of one protocol and fresh queue names."""

    sqs: Any
    names: Names
    protocol: str
    http: httpx.Client
    values: Values | None = None
    made: int = 0

    def expect(self, **values: Any) -> None:
        """Say what the error about to happen names (before the failing call)."""
        self.values = values

    def queue(self, **attributes: str) -> str:
        self.made += 1
        return str(self.sqs.create_queue(QueueName=self.names(f"q{self.made}"),
                                         Attributes=attributes)["QueueUrl"])

    def fifo(self, **attributes: str) -> str:
        self.made += 1
        return str(self.sqs.create_queue(QueueName=self.names(f"f{self.made}.fifo"),
                                         Attributes={"FifoQueue": "true", **attributes})[
            "QueueUrl"])

    def arn(self, url: str) -> str:
        return str(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"])

    def received(self, url: str, **extra: Any) -> dict[str, Any]:
        self.sqs.send_message(QueueUrl=url, MessageBody="m", **extra)
        message: dict[str, Any] = self.sqs.receive_message(QueueUrl=url)["Messages"][0]
        return message

    def raw(self, action: str, members: dict[str, str]) -> None:
        """Post a request botocore would not send, raising ClientError-like AssertionError
        data through `RawError`."""
        if self.protocol == "json":
            response = self.http.post("/", content=json.dumps(members), headers={
                "content-type": "application/x-amz-json-1.0",
                "x-amz-target": f"AmazonSQS.{action}"})
            code = response.headers["x-amzn-query-error"].split(";")[0]
            message = response.json()["message"]
        else:
            response = self.http.post("/", data={"Action": action, "Version": "2012-11-05",
                                                 **members})
            text = response.text
            code = text.split("<Code>")[1].split("</Code>")[0]
            message = text.split("<Message>")[1].split("</Message>")[0]
        raise RawError(response.status_code, code, message)

    def slow_move(self) -> tuple[str, str]:
        """A running move task (1 message a second over 3) and its source's URL."""
        dlq = self.queue()
        source = self.queue(RedrivePolicy=json.dumps(
            {"deadLetterTargetArn": self.arn(dlq), "maxReceiveCount": 3}))
        self.sqs.send_message_batch(QueueUrl=dlq, Entries=[
            {"Id": str(i), "MessageBody": "m"} for i in range(3)])
        handle = self.sqs.start_message_move_task(
            SourceArn=self.arn(dlq), DestinationArn=self.arn(source),
            MaxNumberOfMessagesPerSecond=1)["TaskHandle"]
        return str(handle), dlq


class RawError(Exception):
    """An error answer read from a raw HTTP post."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _attr(**extra: Any) -> dict[str, Any]:
    return {"DataType": "String", "StringValue": "v", **extra}


def _queue_exists(e: Env) -> None:
    name = e.names("twice")
    e.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})
    e.expect(name="VisibilityTimeout")
    e.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})


def _deleted_recently(e: Env) -> None:
    name = e.names("again")
    url = e.sqs.create_queue(QueueName=name)["QueueUrl"]
    e.sqs.delete_queue(QueueUrl=url)
    e.sqs.create_queue(QueueName=name)


def _purge_twice(e: Env) -> None:
    url = e.queue()
    e.sqs.purge_queue(QueueUrl=url)
    e.expect(name=url.rsplit("/", 1)[-1])
    e.sqs.purge_queue(QueueUrl=url)


def _redrive(e: Env) -> None:
    value = json.dumps({"maxReceiveCount": 3})
    e.expect(value=value, reason="Redrive policy does not contain mandatory attribute: "
                                 "deadLetterTargetArn.")
    e.sqs.set_queue_attributes(QueueUrl=e.queue(), Attributes={"RedrivePolicy": value})


def _redrive_allow(e: Env) -> None:
    value = json.dumps({"redrivePermission": "some"})
    e.expect(value=value, reason=_ALLOW_FORMAT)
    e.sqs.set_queue_attributes(QueueUrl=e.queue(), Attributes={"RedriveAllowPolicy": value})


def _dead_letter_target(e: Env) -> None:
    url = e.queue()
    value = json.dumps({"deadLetterTargetArn": e.arn(url) + "-gone", "maxReceiveCount": 3})
    e.expect(value=value)
    e.sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": value})


def _too_many_tags(e: Env) -> None:
    url = e.queue()
    e.expect(name=url.rsplit("/", 1)[-1])
    e.sqs.tag_queue(QueueUrl=url, Tags={f"k{i}": "v" for i in range(51)})


def _message_too_long(e: Env) -> None:
    url = e.queue(MaximumMessageSize="1024")
    e.expect(limit=1024)
    e.sqs.send_message(QueueUrl=url, MessageBody="x" * 1025)


def _not_in_flight(e: Env) -> None:
    url = e.queue()
    handle = e.received(url)["ReceiptHandle"]
    e.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
    e.expect(handle=handle)
    e.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=5)


def _receipt_expired(e: Env) -> None:
    url = e.fifo(ContentBasedDeduplication="true")
    e.sqs.send_message(QueueUrl=url, MessageBody="m", MessageGroupId="g")
    handle = e.sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0][
        "ReceiptHandle"]  # its lease is over at once
    e.expect(handle=handle)
    e.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)


def _visibility_limit(e: Env) -> None:
    url = e.queue()
    handle = e.received(url)["ReceiptHandle"]
    e.expect(value=43_201)
    e.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle,
                                    VisibilityTimeout=43_201)


def _batch_too_long(e: Env) -> None:
    e.expect(size=1_200_000)
    e.sqs.send_message_batch(QueueUrl=e.queue(), Entries=[
        {"Id": str(i), "MessageBody": "x" * 600_000} for i in range(2)])


def _permission(e: Env, url: str, label: str = "Grant", actions: tuple[str, ...] = (
        "SendMessage",), accounts: tuple[str, ...] = ("111122223333",)) -> None:
    e.sqs.add_permission(QueueUrl=url, Label=label, AWSAccountIds=list(accounts),
                         Actions=list(actions))


def _permission_exists(e: Env) -> None:
    url = e.queue()
    _permission(e, url)
    e.expect(label="Grant")
    _permission(e, url)


def _too_many_statements(e: Env) -> None:
    url = e.queue()
    for i in range(20):
        _permission(e, url, label=f"l{i}")
    e.expect(count=21, limit=20)
    _permission(e, url, label="l20")


def _task_running(e: Env) -> None:
    handle, dlq = e.slow_move()
    try:
        e.sqs.start_message_move_task(SourceArn=e.arn(dlq))
    finally:
        e.sqs.cancel_message_move_task(TaskHandle=handle)


def _task_not_running(e: Env) -> None:
    handle, _ = e.slow_move()
    e.sqs.cancel_message_move_task(TaskHandle=handle)
    e.sqs.cancel_message_move_task(TaskHandle=handle)


def _destination_missing(e: Env) -> None:
    source, destination = e.arn(e.queue()), e.arn(e.queue()) + "-gone"
    e.sqs.start_message_move_task(SourceArn=source, DestinationArn=destination)


def _send(e: Env, url: str | None = None, **extra: Any) -> None:
    url = url or e.queue()
    e.sqs.send_message(QueueUrl=url, MessageBody=extra.pop("body", "m"), **extra)


def _fifo_send(e: Env, **extra: Any) -> None:
    _send(e, e.fifo(), MessageGroupId="g", MessageDeduplicationId="d", **extra)


def _with(values: Values, call: Callable[[Env], object]) -> Callable[[Env], object]:
    """A trigger whose error names fixed values."""
    def trigger(e: Env) -> object:
        e.expect(**values)
        return call(e)
    return trigger


TRIGGERS: dict[str, Callable[[Env], object]] = {
    "queue_missing": lambda e: e.sqs.get_queue_url(QueueName=e.names("gone")),
    "missing_parameter": _with({"name": "MessageBody"}, lambda e: _send(e, body="")),
    "invalid_action": _with({"action": "Frobnicate"}, lambda e: e.raw("Frobnicate", {})),
    "not_an_integer": _with({"name": "MaxNumberOfMessages", "value": "ten"},
                            lambda e: e.raw("ReceiveMessage", {
                                "QueueUrl": e.queue(), "MaxNumberOfMessages": "ten"})),
    "max_results": _with({"value": 0}, lambda e: e.sqs.list_queues(MaxResults=0)),
    "queue_name": lambda e: e.sqs.create_queue(QueueName="bad name!"),
    "fifo_queue_name": lambda e: e.sqs.create_queue(QueueName=e.names("plain"), Attributes={
        "FifoQueue": "true"}),
    "queue_exists": _queue_exists,
    "queue_deleted_recently": _deleted_recently,
    "unknown_attribute": _with({"name": "Bogus"}, lambda e: e.sqs.get_queue_attributes(
        QueueUrl=e.queue(), AttributeNames=["Bogus"])),
    "fifo_only_attribute": _with({"name": "DeduplicationScope"},
                                 lambda e: e.queue(DeduplicationScope="queue")),
    "attribute_value": _with({"name": "VisibilityTimeout"}, lambda e: e.sqs.set_queue_attributes(
        QueueUrl=e.queue(), Attributes={"VisibilityTimeout": "43201"})),
    "fifo_immutable": lambda e: e.sqs.set_queue_attributes(
        QueueUrl=e.fifo(), Attributes={"FifoQueue": "false"}),
    "redrive_policy": _redrive,
    "redrive_allow_policy": _redrive_allow,
    "dead_letter_target": _dead_letter_target,
    "purge_in_progress": _purge_twice,
    "too_many_tags": _too_many_tags,
    "tag_keys": lambda e: e.sqs.untag_queue(QueueUrl=e.queue(), TagKeys=[]),
    "tag_values": lambda e: e.sqs.tag_queue(QueueUrl=e.queue(), Tags={"k": "v" * 257}),
    "message_too_long": _message_too_long,
    "message_contents": lambda e: _send(e, body="nul \x00 here"),
    "delay_seconds": _with({"value": 901}, lambda e: _send(e, DelaySeconds=901)),
    "fifo_delay": _with({"value": 5}, lambda e: _fifo_send(e, DelaySeconds=5)),
    "standard_dedup": _with({"value": "d"}, lambda e: _send(e, MessageDeduplicationId="d")),
    "dedup_required": lambda e: _send(e, e.fifo(), MessageGroupId="g"),
    "batch_group_missing": lambda e: e.sqs.send_message_batch(QueueUrl=e.fifo(
        ContentBasedDeduplication="true"), Entries=[{"Id": "a", "MessageBody": "m"}]),
    "fifo_token": _with({"name": "MessageGroupId", "value": "a b"}, lambda e: _send(
        e, e.fifo(), MessageGroupId="a b", MessageDeduplicationId="d")),
    "attribute_count": _with({"count": 11}, lambda e: _send(e, MessageAttributes={
        f"a{i}": _attr() for i in range(11)})),
    "attribute_name": lambda e: _send(e, MessageAttributes={"bad name": _attr()}),
    "attribute_reserved": lambda e: _send(e, MessageAttributes={"AWS.mine": _attr()}),
    "attribute_type": _with({"name": "a"}, lambda e: _send(e, MessageAttributes={
        "a": _attr(DataType="Text")})),
    "attribute_empty": _with({"name": "a", "type": "String"}, lambda e: _send(
        e, MessageAttributes={"a": _attr(StringValue="")})),
    "attribute_number": _with({"name": "n"}, lambda e: _send(e, MessageAttributes={
        "n": _attr(DataType="Number", StringValue="many")})),
    "attribute_binary": _with({"name": "b"}, lambda e: _send(e, MessageAttributes={
        "b": {"DataType": "Binary", "StringValue": "x"}})),
    "attribute_missing_type": _with({"name": "a"}, lambda e: _send(e, MessageAttributes={
        "a": _attr(DataType="")})),
    "attribute_characters": _with({"name": "a"}, lambda e: _send(e, MessageAttributes={
        "a": _attr(StringValue="bell \x07")})),
    "system_attribute": _with({"name": "Other"}, lambda e: _send(e, MessageSystemAttributes={
        "Other": _attr()})),
    "trace_header_type": lambda e: _send(e, MessageSystemAttributes={
        "AWSTraceHeader": _attr(DataType="Number", StringValue="1")}),
    "max_messages": _with({"value": 11}, lambda e: e.sqs.receive_message(
        QueueUrl=e.queue(), MaxNumberOfMessages=11)),
    "wait_time": _with({"value": 21}, lambda e: e.sqs.receive_message(
        QueueUrl=e.queue(), WaitTimeSeconds=21)),
    "visibility_timeout": _with({"value": 43_201}, lambda e: e.sqs.receive_message(
        QueueUrl=e.queue(), VisibilityTimeout=43_201)),
    "attempt_id": _with({"value": "a b"}, lambda e: e.sqs.receive_message(
        QueueUrl=e.fifo(), ReceiveRequestAttemptId="a b")),
    "receipt_handle": _with({"handle": "garbage"}, lambda e: e.sqs.delete_message(
        QueueUrl=e.queue(), ReceiptHandle="garbage")),
    "not_in_flight": _not_in_flight,
    "visibility_limit": _visibility_limit,
    "empty_batch": _with({"entry": "DeleteMessageBatchRequestEntry"},
                         lambda e: e.sqs.delete_message_batch(QueueUrl=e.queue(), Entries=[])),
    "too_many_entries": _with({"count": 11}, lambda e: e.sqs.send_message_batch(
        QueueUrl=e.queue(), Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(11)])),
    "batch_entry_id": lambda e: e.sqs.send_message_batch(QueueUrl=e.queue(), Entries=[
        {"Id": "no spaces", "MessageBody": "m"}]),
    "batch_ids_not_distinct": _with({"id": "a"}, lambda e: e.sqs.send_message_batch(
        QueueUrl=e.queue(), Entries=[{"Id": "a", "MessageBody": "m"},
                                     {"Id": "a", "MessageBody": "n"}])),
    "batch_too_long": _batch_too_long,
    "permission_label": _with({"label": "bad label"}, lambda e: _permission(
        e, e.queue(), label="bad label")),
    "permission_exists": _permission_exists,
    "permission_missing": _with({"label": "Nope"}, lambda e: e.sqs.remove_permission(
        QueueUrl=e.queue(), Label="Nope")),
    "permission_action": _with({"action": "CreateQueue"}, lambda e: _permission(
        e, e.queue(), actions=("CreateQueue",))),
    "permission_accounts": lambda e: _permission(e, e.queue(), accounts=()),
    "permission_actions_over": _with({"count": 8}, lambda e: _permission(
        e, e.queue(), actions=("SendMessage",) * 8)),
    "policy_statements": _too_many_statements,
    "source_arn_missing": lambda e: e.sqs.start_message_move_task(
        SourceArn=e.arn(e.queue()) + "-gone"),
    "destination_arn_missing": _destination_missing,
    "arn_format": _with({"name": "SourceArn"}, lambda e: e.sqs.list_message_move_tasks(
        SourceArn="not-an-arn")),
    "not_a_dead_letter_queue": lambda e: e.sqs.start_message_move_task(
        SourceArn=e.arn(e.queue())),
    "task_running": _task_running,
    "task_handle": lambda e: e.sqs.cancel_message_move_task(TaskHandle="not-a-handle"),
    "task_missing": lambda e: e.sqs.cancel_message_move_task(TaskHandle=base64.urlsafe_b64encode(
        f"{uuid.uuid4()}&{e.arn(e.queue())}".encode()).decode()),
    "sse_exclusive": lambda e: e.sqs.set_queue_attributes(QueueUrl=e.queue(), Attributes={
        "KmsMasterKeyId": "alias/mine", "SqsManagedSseEnabled": "true"}),
    "receipt_expired": _receipt_expired,
    "task_not_running": _task_not_running,
}


def test_every_row_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(TEXTS)


@pytest.fixture(scope="module")
def clients(sqs_server: SqsServer, query_data_path: Path) -> dict[str, Any]:  # noqa: F811
    """One boto3 client per protocol (making one takes a second or more)."""
    made: dict[str, Any] = {}
    for protocol in ("json", "query"):
        with pytest.MonkeyPatch.context() as patch:
            if protocol == "query":
                patch.setenv("AWS_DATA_PATH", str(query_data_path))
            client = boto3.session.Session().client(
                "sqs", endpoint_url=sqs_server.endpoint, region_name="us-east-1",
                config=BOTO_CONFIG, **CREDENTIALS)
        assert client.meta.service_model.protocol == protocol
        made[protocol] = client
    return made


@pytest.fixture(params=["json", "query"])
def env(request: pytest.FixtureRequest, sqs_server: SqsServer, names: Names,
        clients: dict[str, Any]) -> Iterator[Env]:
    with httpx.Client(base_url=sqs_server.endpoint) as http:
        yield Env(clients[request.param], names, request.param, http)


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_documented_error(env: Env, key: str) -> None:
    row = TEXTS[key]
    with pytest.raises((ClientError, RawError)) as caught:
        TRIGGERS[key](env)
    exc = caught.value
    if isinstance(exc, RawError):
        status, code, message = exc.status, exc.code, exc.message
    else:
        error = exc.response["Error"]
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        code, message = error["Code"], error["Message"]
    assert (status, code) == (row.kind.status, row.kind.code)
    template = row.query if env.protocol == "query" and row.query else row.text
    assert message == template.format(**(env.values or {}))
