"""A key scoped to some queues reaches no other queue through the SQS actions whose body
names one beside the request's own: a RedrivePolicy's dead-letter queue and a move task's
destination need `send` there, a move task's handle `manage` on its source queue; each
refusal is AWS's `AccessDenied` (403) and changes nothing. boto3 (and a signed form post)
against a live endpoint with API keys, both backends; the native API's rules are in
test_key_scopes.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conveyor.broker.api_keys import ApiKeys
from conveyor.keys import ApiKey, parse_grants
from conveyor.sqs.auth import authorize_action
from conveyor.sqs.context import Context
from conveyor.sqs.errors import SqsError
from conveyor.sqs.params import Params
from tests.sqs.server import SqsServer
from tests.trust.test_sigv4 import form_post

ACCOUNT = "000000000000"
DENIED = ("AccessDenied", 403)


def arn(name: str) -> str:
    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"


def redrive(dead_letter_queue: str) -> dict[str, str]:
    return {"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn(dead_letter_queue),
                                         "maxReceiveCount": "3"})}


def aws_code(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


class Endpoint:
    """A live SQS endpoint with API keys; `client(name)` signs as that key."""

    def __init__(self, server: SqsServer) -> None:
        self.server = server
        self.keys = ApiKeys(server.broker, cache_seconds=0)
        self.secrets: dict[str, tuple[str, str]] = {}
        self._clients: dict[str, Any] = {}

    def key(self, name: str, *grants: str) -> None:
        key, token = self.server.call(self.keys.create(name, parse_grants(grants)))
        self.secrets[name] = (key.id, token)

    def client(self, name: str) -> Any:
        if name not in self._clients:
            key_id, token = self.secrets[name]
            self._clients[name] = boto3.session.Session().client(
                "sqs", endpoint_url=self.server.endpoint, region_name="us-east-1",
                aws_access_key_id=key_id, aws_secret_access_key=token,
                config=Config(retries={"max_attempts": 1}))
        return self._clients[name]

    def url(self, name: str) -> str:
        return f"{self.server.endpoint}/{ACCOUNT}/{name}"

    def close(self) -> None:
        for made in self._clients.values():
            made.close()


@pytest.fixture
def sqs_keyed(database_url: str) -> Iterator[Endpoint]:
    server = SqsServer(database_url, account_id=ACCOUNT, relaxed=True)
    endpoint = Endpoint(server)
    try:
        endpoint.key("ops", "send,receive,manage")
        endpoint.key("teama", "send,receive,manage:teama-*")
        boss = endpoint.client("ops")
        for name in ("teamb-q", "teama-dlq", "teama-other"):
            boss.create_queue(QueueName=name)
        yield endpoint
    finally:
        endpoint.close()
        server.close()


def attributes(sqs: Any, url: str) -> dict[str, str]:
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_dead_letter_queue_needs_send_on_it(sqs_keyed: Endpoint) -> None:
    boss, mine = sqs_keyed.client("ops"), sqs_keyed.client("teama")
    # CreateQueue naming another team's queue as dead-letter queue: refused, not created.
    assert aws_code(lambda: mine.create_queue(QueueName="teama-src",
                                              Attributes=redrive("teamb-q"))) == DENIED
    assert aws_code(lambda: boss.get_queue_url(QueueName="teama-src"))[0] == \
        "AWS.SimpleQueueService.NonExistentQueue"
    own = mine.create_queue(QueueName="teama-src")["QueueUrl"]
    # SetQueueAttributes likewise, in both protocols; the queue keeps no RedrivePolicy.
    assert aws_code(lambda: mine.set_queue_attributes(
        QueueUrl=own, Attributes=redrive("teamb-q"))) == DENIED
    key_id, token = sqs_keyed.secrets["teama"]
    assert form_post(sqs_keyed.server.endpoint, key_id, token, Action="SetQueueAttributes",
                     QueueUrl=own, **{"Attribute.1.Name": "RedrivePolicy",
                                      "Attribute.1.Value": redrive("teamb-q")[
                                          "RedrivePolicy"]}) == (403, "AccessDenied")
    assert "RedrivePolicy" not in attributes(boss, own)
    assert not boss.list_dead_letter_source_queues(QueueUrl=sqs_keyed.url("teamb-q")).get(
        "queueUrls")
    # Its own dead-letter queue is fine; so is another one with `send` there.
    mine.set_queue_attributes(QueueUrl=own, Attributes=redrive("teama-dlq"))
    assert json.loads(attributes(boss, own)["RedrivePolicy"])["deadLetterTargetArn"] == \
        arn("teama-dlq")
    mine.create_queue(QueueName="teama-src2", Attributes=redrive("teama-dlq"))
    sqs_keyed.key("teama-to-b", "manage:teama-*", "send:teamb-q")
    sqs_keyed.client("teama-to-b").set_queue_attributes(QueueUrl=own,
                                                        Attributes=redrive("teamb-q"))
    assert json.loads(attributes(boss, own)["RedrivePolicy"])["deadLetterTargetArn"] == \
        arn("teamb-q")


def _dead_letters(sqs_keyed: Endpoint, dead_letter_queue: str, count: int) -> None:
    """Make `dead_letter_queue` one (of a `<name>-src` queue) holding `count` messages."""
    boss = sqs_keyed.client("ops")
    boss.create_queue(QueueName=f"{dead_letter_queue}-src",
                      Attributes=redrive(dead_letter_queue))
    url = sqs_keyed.url(dead_letter_queue)
    for start in range(0, count, 10):
        boss.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, min(count, start + 10))])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_move_task_destination_needs_send_on_it(sqs_keyed: Endpoint) -> None:
    boss, mine = sqs_keyed.client("ops"), sqs_keyed.client("teama")
    _dead_letters(sqs_keyed, "teama-dlq", 2)
    assert aws_code(lambda: mine.start_message_move_task(
        SourceArn=arn("teama-dlq"), DestinationArn=arn("teamb-q"))) == DENIED
    assert boss.list_message_move_tasks(SourceArn=arn("teama-dlq"))["Results"] == []
    assert attributes(boss, sqs_keyed.url("teamb-q"))["ApproximateNumberOfMessages"] == "0"
    mine.start_message_move_task(SourceArn=arn("teama-dlq"), DestinationArn=arn("teama-other"))
    assert len(boss.list_message_move_tasks(SourceArn=arn("teama-dlq"))["Results"]) == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_move_tasks_are_their_source_queues(sqs_keyed: Endpoint) -> None:
    boss, mine = sqs_keyed.client("ops"), sqs_keyed.client("teama")
    # Another team's running task (a message a second: it runs for a while).
    boss.create_queue(QueueName="teamb-dlq")
    _dead_letters(sqs_keyed, "teamb-dlq", 30)
    handle = boss.start_message_move_task(
        SourceArn=arn("teamb-dlq"), DestinationArn=arn("teamb-q"),
        MaxNumberOfMessagesPerSecond=1)["TaskHandle"]

    def status() -> str:
        return str(boss.list_message_move_tasks(SourceArn=arn("teamb-dlq"))["Results"][0][
            "Status"])

    assert aws_code(lambda: mine.list_message_move_tasks(SourceArn=arn("teamb-dlq"))) == \
        DENIED
    assert aws_code(lambda: mine.cancel_message_move_task(TaskHandle=handle)) == DENIED
    assert status() == "RUNNING"
    # A handle is the client's to write: the task's id beside a queue of the key's own
    # names no task of that queue.
    task_id = base64.urlsafe_b64decode(handle).decode().partition("&")[0]
    forged = base64.urlsafe_b64encode(f"{task_id}&{arn('teama-dlq')}".encode()).decode()
    assert aws_code(lambda: mine.cancel_message_move_task(TaskHandle=forged)) == \
        ("ResourceNotFoundException", 404)
    assert status() == "RUNNING"
    # A key without manage anywhere is refused before its handle is read.
    sqs_keyed.key("sender", "send")
    assert aws_code(lambda: sqs_keyed.client("sender").cancel_message_move_task(
        TaskHandle="garbage")) == DENIED
    # The source queue's key (and its handle) cancels it.
    sqs_keyed.key("teamb", "manage:teamb-*")
    sqs_keyed.client("teamb").cancel_message_move_task(TaskHandle=handle)
    assert status() == "CANCELLED"


def test_every_queue_needs_a_grant_of_stars() -> None:
    """An action without its row needs manage on every queue: `manage:**` has it,
    `manage:?` (whose `?` fnmatch lets match a `*`) does not."""
    ctx = Context(None, "us-east-1", ACCOUNT, "http://localhost")  # type: ignore[arg-type]
    for grant, allowed in (("manage", True), ("manage:**", True), ("manage:?", False),
                           ("manage:teama-*", False), ("send,receive", False)):
        key = ApiKey("k", "k", parse_grants([grant]), 0)
        try:
            authorize_action(key, "SomeNewAction", ctx, Params({}))
        except SqsError as exc:
            assert exc.kind.code == "AccessDenied" and not allowed, grant
        else:
            assert allowed, grant
