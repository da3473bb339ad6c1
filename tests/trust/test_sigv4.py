"""SigV4 on the SQS endpoint: botocore's own signer against our verifier (header and
presigned), then boto3 through a live `conveyor serve --sqs-credentials`: the right keys
work, a wrong secret, an unknown key and a stale date are refused with AWS's codes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conveyor.errors import InvalidInput
from conveyor.sqs.errors import SqsError
from conveyor.sqs.sigv4 import SigV4Verifier, parse_credentials
from tests.http.server import start_server

KEY, SECRET = "AKIDTRUST", "s3cret/with+chars"
BODY = b'{"QueueName": "signed"}'


def signed(secret: str = SECRET, key: str = KEY, body: bytes = BODY,
           url: str = "http://127.0.0.1:9324/", presign: bool = False) -> AWSRequest:
    request = AWSRequest(method="POST", url=url, data=body, headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AmazonSQS.CreateQueue"})
    signer = (SigV4QueryAuth(Credentials(key, secret), "sqs", "eu-west-1", expires=60)
              if presign else SigV4Auth(Credentials(key, secret), "sqs", "eu-west-1"))
    signer.add_auth(request)
    return request


def verify(verifier: SigV4Verifier, request: AWSRequest, body: bytes = BODY) -> None:
    prepared = request.prepare()
    path, _, query = prepared.url.split("9324", 1)[1].partition("?")
    headers = [("host", "127.0.0.1:9324"), *prepared.headers.items()]  # the client adds it
    verifier.verify("POST", path, query, headers, body)


def code_of(call: Any) -> str:
    with pytest.raises(SqsError) as caught:
        call()
    return caught.value.kind.code


def test_botocore_signatures_verify() -> None:
    verifier = SigV4Verifier({KEY: SECRET}, loopback=True)
    verify(verifier, signed())
    verify(verifier, signed(url="http://127.0.0.1:9324/000000000000/q"))
    verify(verifier, signed(presign=True), body=b"")  # botocore moves the body to the query
    assert code_of(lambda: verify(verifier, signed(secret="wrong"))) == "SignatureDoesNotMatch"
    assert code_of(lambda: verify(verifier, signed(), body=b"{}")) == "SignatureDoesNotMatch"
    assert code_of(lambda: verify(verifier, signed(key="AKIDOTHER"))) == "InvalidClientTokenId"
    late = SigV4Verifier({KEY: SECRET}, loopback=True, clock=lambda: time.time() + 1200)
    assert code_of(lambda: verify(late, signed())) == "RequestExpired"
    assert code_of(lambda: verify(late, signed(presign=True))) == "RequestExpired"
    unsigned = AWSRequest(method="POST", url="http://127.0.0.1:9324/", data=BODY)
    assert code_of(lambda: verify(verifier, unsigned)) == "MissingAuthenticationToken"
    garbled = AWSRequest(method="POST", url="http://127.0.0.1:9324/", data=BODY,
                         headers={"Authorization": "AWS4-HMAC-SHA256 nonsense"})
    assert code_of(lambda: verify(verifier, garbled)) == "IncompleteSignature"


def test_open_only_on_loopback_without_pairs() -> None:
    assert SigV4Verifier({}, loopback=True).open
    verify(SigV4Verifier({}, loopback=True), signed(secret="anything"))
    public = SigV4Verifier({}, loopback=False)
    assert code_of(lambda: verify(public, signed())) == "InvalidClientTokenId"
    assert parse_credentials(" a:b , c:d:e ") == {"a": "b", "c": "d:e"}
    for bad in ("nocolon", ":secret", "key:"):
        with pytest.raises(InvalidInput):
            parse_credentials(bad)


_clients: list[Any] = []


def client(endpoint: str, key: str, secret: str) -> Any:
    made = boto3.session.Session().client(
        "sqs", endpoint_url=endpoint, region_name="eu-west-1", aws_access_key_id=key,
        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))
    _clients.append(made)
    return made


# botocore's pooled client sockets may be collected during a later test; not a server leak
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.timeout(60)
def test_boto3_against_serve_with_credentials(tmp_path: Path) -> None:
    server = start_server(tmp_path, ["--database", f"sqlite:///{tmp_path}/sig.db",
                                     "--sqs-port", "0", "--sqs-credentials",
                                     f"{KEY}:{SECRET},AKIDTWO:two"])
    try:
        assert server.sqs_url is not None
        good = client(server.sqs_url, KEY, SECRET)
        url = good.create_queue(QueueName="signed")["QueueUrl"]
        good.send_message(QueueUrl=url, MessageBody="hello")
        got = client(server.sqs_url, "AKIDTWO", "two").receive_message(QueueUrl=url)
        assert [m["Body"] for m in got["Messages"]] == ["hello"]
        for key, secret, code in ((KEY, "wrong", "SignatureDoesNotMatch"),
                                  ("AKIDNOBODY", SECRET, "InvalidClientTokenId")):
            with pytest.raises(ClientError) as caught:
                client(server.sqs_url, key, secret).list_queues()
            assert caught.value.response["Error"]["Code"] == code
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        while _clients:
            _clients.pop().close()
        server.stop()
