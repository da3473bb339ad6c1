"""SigV4 on the SQS endpoint with API keys: botocore's own signer against our verifier
(header and presigned), then boto3 and signed form posts through a live `conveyor serve`
on both backends: the right key works within its grants, a wrong secret, an unknown key,
a missing signature and another queue's key are refused with AWS's codes in the JSON and
query protocols, and `ListQueues` lists only what a key may see."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import botocore
import httpx
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conveyor.broker.api_keys import ApiKeys
from conveyor.broker.broker import Broker
from conveyor.keys import ApiKey, parse_grants
from conveyor.sqs.errors import SqsError
from conveyor.sqs.sigv4 import SigV4Verifier, access_key_of
from conveyor.storage.factory import storage_from_url
from tests.http.server import ServerProcess, conveyor_command, start_server

KEY, SECRET = "AKIDTRUST", "s3cret/with+chars"
BODY = b'{"QueueName": "signed"}'
NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}


def signed(secret: str = SECRET, key: str = KEY, body: bytes = BODY,
           url: str = "http://127.0.0.1:9324/", presign: bool = False) -> AWSRequest:
    request = AWSRequest(method="POST", url=url, data=body, headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AmazonSQS.CreateQueue"})
    signer = (SigV4QueryAuth(Credentials(key, secret), "sqs", "eu-west-1", expires=60)
              if presign else SigV4Auth(Credentials(key, secret), "sqs", "eu-west-1"))
    signer.add_auth(request)
    return request


def verify(verifier: SigV4Verifier, request: AWSRequest, body: bytes = BODY) -> str:
    prepared = request.prepare()
    path, _, query = prepared.url.split("9324", 1)[1].partition("?")
    headers = [("host", "127.0.0.1:9324"), *prepared.headers.items()]  # the client adds it
    assert access_key_of(query, headers) == verifier.verify("POST", path, query, headers, body)
    return verifier.verify("POST", path, query, headers, body)


def code_of(call: Any) -> str:
    with pytest.raises(SqsError) as caught:
        call()
    return caught.value.kind.code


def test_botocore_signatures_verify() -> None:
    verifier = SigV4Verifier({KEY: SECRET})
    assert verify(verifier, signed()) == KEY
    verify(verifier, signed(url="http://127.0.0.1:9324/000000000000/q"))
    verify(verifier, signed(presign=True), body=b"")  # botocore moves the body to the query
    assert code_of(lambda: verify(verifier, signed(secret="wrong"))) == "SignatureDoesNotMatch"
    assert code_of(lambda: verify(verifier, signed(), body=b"{}")) == "SignatureDoesNotMatch"
    assert code_of(lambda: verify(verifier, signed(key="AKIDOTHER"))) == "InvalidClientTokenId"
    late = SigV4Verifier({KEY: SECRET}, clock=lambda: time.time() + 1200)
    assert code_of(lambda: verify(late, signed())) == "RequestExpired"
    assert code_of(lambda: verify(late, signed(presign=True))) == "RequestExpired"
    unsigned = AWSRequest(method="POST", url="http://127.0.0.1:9324/", data=BODY)
    assert code_of(lambda: verify(verifier, unsigned)) == "MissingAuthenticationToken"
    garbled = AWSRequest(method="POST", url="http://127.0.0.1:9324/", data=BODY,
                         headers={"Authorization": "AWS4-HMAC-SHA256 nonsense"})
    assert code_of(lambda: verify(verifier, garbled)) == "IncompleteSignature"


_clients: list[Any] = []


def client(endpoint: str, key: str, secret: str, **config: Any) -> Any:
    made = boto3.session.Session().client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, **config))
    _clients.append(made)
    return made


def aws_code(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def form_post(endpoint: str, key: str, secret: str, **form: str) -> tuple[int, str]:
    """A query-protocol request signed by botocore, as the Java SDK v1 sends it: the
    status and the XML error code ("" on success)."""
    body = urlencode({"Version": "2012-11-05", **form}).encode()
    request = AWSRequest(method="POST", url=endpoint + "/", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials(key, secret), "sqs", "us-east-1").add_auth(request)
    prepared = request.prepare()
    answer = httpx.post(prepared.url, content=body, headers=dict(prepared.headers),
                        timeout=10)
    code = ET.fromstring(answer.content).find("sqs:Error/sqs:Code", NS)
    return answer.status_code, "" if code is None else code.text or ""


async def keys_do(url: str, what: str, names: list[tuple[str, str]]
                  ) -> list[tuple[ApiKey, str]]:
    """Create (name, grant) keys, or revoke named ones, in the server's database."""
    broker = Broker(storage_from_url(url), sweep_interval=None)
    await broker.start()
    try:
        keys = ApiKeys(broker)
        if what == "revoke":
            for name, _ in names:
                await keys.revoke(name)
            return []
        return [await keys.create(name, parse_grants([grant])) for name, grant in names]
    finally:
        await broker.close()


@pytest.fixture
def keyed_server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path, ["--database", database_url, "--sqs-port", "0"])
    try:
        yield server
    finally:
        while _clients:
            _clients.pop().close()
        server.stop()


# botocore's pooled client sockets may be collected during a later test; not a server leak
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.timeout(90)
def test_boto3_with_api_keys(database_url: str, keyed_server: ServerProcess) -> None:
    made = asyncio.run(keys_do(database_url, "create", [
        ("admin", "send,receive,manage"), ("orders", "send,receive:orders-*"),
        ("reader", "receive:orders-*")]))
    (admin, admin_secret), (orders, orders_secret), (reader, reader_secret) = made
    endpoint = keyed_server.sqs_url
    assert endpoint is not None

    boss = client(endpoint, admin.id, admin_secret)
    own = boss.create_queue(QueueName="orders-1")["QueueUrl"]
    other = boss.create_queue(QueueName="billing-1")["QueueUrl"]
    assert sorted(boss.list_queues()["QueueUrls"]) == sorted([own, other])

    # The right key, within its grants: send and receive on its own queues.
    mine = client(endpoint, orders.id, orders_secret)
    mine.send_message(QueueUrl=own, MessageBody="hello")
    got = mine.receive_message(QueueUrl=own, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in got] == ["hello"]
    assert mine.list_queues()["QueueUrls"] == [own]  # billing-1 is not listed
    assert "QueueUrls" not in client(endpoint, reader.id, reader_secret).list_queues(
        QueueNamePrefix="billing")
    # Another queue's key, or an action beyond the grant: AccessDenied, nothing done.
    denied = ("AccessDenied", 403)
    assert aws_code(lambda: mine.send_message(QueueUrl=other, MessageBody="x")) == denied
    assert aws_code(lambda: mine.receive_message(QueueUrl=other)) == denied
    assert aws_code(lambda: mine.purge_queue(QueueUrl=own)) == denied
    assert aws_code(lambda: mine.create_queue(QueueName="orders-2")) == denied
    assert aws_code(lambda: mine.get_queue_url(QueueName="billing-1")) == denied
    # billing-1 dead-letters into orders-1: the orders key sees orders-1, not its source.
    arn = boss.get_queue_attributes(QueueUrl=own, AttributeNames=["QueueArn"])
    boss.set_queue_attributes(QueueUrl=other, Attributes={"RedrivePolicy": json.dumps({
        "deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "5"})})
    assert boss.list_dead_letter_source_queues(QueueUrl=own)["queueUrls"] == [other]
    assert "queueUrls" not in mine.list_dead_letter_source_queues(QueueUrl=own)
    read_only = client(endpoint, reader.id, reader_secret)
    assert aws_code(lambda: read_only.send_message(QueueUrl=own, MessageBody="x")) == denied
    assert "Messages" not in boss.receive_message(QueueUrl=other)  # SQS's JSON lists none
    # Wrong secret, unknown key, no signature.
    assert aws_code(lambda: client(endpoint, orders.id, "wrong" * 4).list_queues()) == \
        ("SignatureDoesNotMatch", 403)
    assert aws_code(lambda: client(endpoint, "AKIDNOBODY", orders_secret).list_queues()) == \
        ("InvalidClientTokenId", 403)
    unsigned = client(endpoint, "x", "x", signature_version=botocore.UNSIGNED)
    assert aws_code(lambda: unsigned.list_queues()) == ("MissingAuthenticationToken", 403)

    # The query protocol answers with the same codes.
    assert form_post(endpoint, orders.id, orders_secret, Action="SendMessage",
                     QueueUrl=own, MessageBody="q") == (200, "")
    assert form_post(endpoint, orders.id, orders_secret, Action="PurgeQueue",
                     QueueUrl=other) == (403, "AccessDenied")
    assert form_post(endpoint, orders.id, "wrong" * 4, Action="ListQueues") == \
        (403, "SignatureDoesNotMatch")
    assert form_post(endpoint, "AKIDNOBODY", orders_secret, Action="ListQueues") == \
        (403, "InvalidClientTokenId")

    # One key for every door: the same token is the native API's bearer token.
    with httpx.Client(base_url=keyed_server.url, timeout=10) as http:
        listed = http.get("/v1/queues", headers={"authorization": f"Bearer {orders_secret}"})
        assert [q["name"] for q in listed.json()["queues"]] == ["orders-1"]

    # A revoked key stops signing (after the 5 s cache).
    asyncio.run(keys_do(database_url, "revoke", [("orders", "")]))
    deadline = time.monotonic() + 10
    while True:
        try:
            mine.list_queues()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidClientTokenId"
            break
        assert time.monotonic() < deadline, "the revoked key still signs"
        time.sleep(0.25)


@pytest.mark.timeout(60)
def test_sqs_credentials_give_way_to_keys(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/pairs.db"
    refused = subprocess.run([*conveyor_command(), "serve", "--port", "0", "--database",
                              database, "--sqs-credentials", f"{KEY}:{SECRET}"],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and "keys create" in refused.stderr, refused.stderr
    secret = "imported-secret-0123456789"
    made = subprocess.run([*conveyor_command(), "keys", "create", "legacy", "--database",
                           database, "--allow", "send,receive:jobs-*", "--access-key-id",
                           KEY, "--secret-stdin"], input=secret + "\n", capture_output=True,
                          text=True, timeout=30)
    assert made.returncode == 0 and made.stdout == "" and KEY in made.stderr, made.stderr
    server = start_server(tmp_path, ["--database", database, "--sqs-port", "0"])
    try:
        assert server.sqs_url is not None
        pair = client(server.sqs_url, KEY, secret)
        assert "QueueUrls" not in pair.list_queues()
        assert aws_code(lambda: pair.create_queue(QueueName="jobs-1")) == \
            ("AccessDenied", 403)  # the pair has no manage grant now
    finally:
        while _clients:
            _clients.pop().close()
        server.stop()


def test_every_action_has_its_permission() -> None:
    """A new SQS action gets its row in the permission table (until then it needs manage
    on every queue, so narrower keys cannot call it)."""
    from conveyor.sqs.app import HANDLERS
    from conveyor.sqs.auth import NEEDS

    assert set(HANDLERS) == set(NEEDS)
