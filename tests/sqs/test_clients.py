"""Other real clients: aiobotocore (concurrent long polls) and the AWS CLI as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from tests.sqs.conftest import BOTO_CONFIG, CREDENTIALS
from tests.sqs.server import SqsServer
from tests.support.waiting import until_waiting

Names = Callable[[str], str]


async def test_aiobotocore_long_polls_answer_when_a_message_arrives(
        sqs_server: SqsServer, names: Names) -> None:
    session = get_session()
    async with session.create_client("sqs", endpoint_url=sqs_server.endpoint,
                                     region_name="us-east-1", config=BOTO_CONFIG,
                                     **CREDENTIALS) as sqs:
        url = (await sqs.create_queue(QueueName=names("async")))["QueueUrl"]
        started = time.monotonic()
        polls = [asyncio.create_task(sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=10, MessageAttributeNames=["All"]))
            for _ in range(3)]
        await until_waiting(sqs_server.broker, 3)  # the server's loop, read from here
        sent = await sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": f"m{i}", "MessageAttributes": {
                "n": {"DataType": "Number", "StringValue": str(i)}}} for i in range(3)])
        assert len(sent["Successful"]) == 3
        results = await asyncio.wait_for(asyncio.gather(*polls), 8)
        elapsed = time.monotonic() - started
        received = [m for r in results for m in r.get("Messages", [])]
        assert 1 <= len(received) <= 3
        assert elapsed < 5, f"long polls took {elapsed:.1f}s to see the messages"
        md5s = {e["Id"]: e["MD5OfMessageAttributes"] for e in sent["Successful"]}
        for message in received:
            index = message["Body"][1:]
            assert message["MD5OfMessageAttributes"] == md5s[index]
        attrs = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        assert attrs["Attributes"]["QueueArn"].endswith(url.rsplit("/", 1)[1])
        await sqs.delete_queue(QueueUrl=url)
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            await sqs.get_queue_url(QueueName=url.rsplit("/", 1)[1])


async def test_aiobotocore_sees_aws_behaviour(sqs_server: SqsServer, names: Names) -> None:
    session = get_session()
    async with session.create_client("sqs", endpoint_url=sqs_server.endpoint,
                                     region_name="us-east-1", config=BOTO_CONFIG,
                                     **CREDENTIALS) as sqs:
        with pytest.raises(sqs.exceptions.QueueDoesNotExist) as exc:
            await sqs.get_queue_url(QueueName=names("absent"))
        assert exc.value.response["Error"]["Message"] == "The specified queue does not exist."
        url = (await sqs.create_queue(QueueName=names("aio.fifo"), Attributes={
            "FifoQueue": "true", "ContentBasedDeduplication": "true",
            "Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"}]}),
        }))["QueueUrl"]
        await sqs.send_message(QueueUrl=url, MessageBody="b", MessageGroupId="g",
                               DelaySeconds=0, MessageSystemAttributes={"AWSTraceHeader": {
                                   "DataType": "String", "StringValue": "Root=1-x"}})
        first = await sqs.receive_message(QueueUrl=url, ReceiveRequestAttemptId="r1",
                                          MessageSystemAttributeNames=["AWSTraceHeader"])
        again = await sqs.receive_message(QueueUrl=url, ReceiveRequestAttemptId="r1")
        [message] = first["Messages"]
        assert message["Attributes"] == {"AWSTraceHeader": "Root=1-x"}
        assert again["Messages"][0]["ReceiptHandle"] == message["ReceiptHandle"]
        with pytest.raises(sqs.exceptions.PurgeQueueInProgress):
            for _ in range(2):
                await sqs.purge_queue(QueueUrl=url)


def aws_cli() -> list[str]:
    """The AWS CLI installed next to this Python (pinned in the test extra)."""
    beside = Path(sys.executable).parent / "aws"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("aws")
    if found is None:
        pytest.skip("the AWS CLI is not installed")
    return [found]


@pytest.mark.slow  # each CLI call is a new process (~1 s)
def test_aws_cli_end_to_end(sqs_server: SqsServer, names: Names, tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_PAGER": ""}

    def aws(*args: str, check: bool = True) -> Any:
        done = subprocess.run(
            [*aws_cli(), "--endpoint-url", sqs_server.endpoint, "--output", "json", "sqs",
             *args], env=env, capture_output=True, text=True, timeout=60)
        if check:
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout) if done.stdout.strip() else None
        return done

    name = names("cli")
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Base", "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"}]})
    (tmp_path / "attributes.json").write_text(json.dumps({
        "VisibilityTimeout": "45", "Policy": policy, "KmsMasterKeyId": "alias/aws/sqs"}))
    url = aws("create-queue", "--queue-name", name,
              "--attributes", f"file://{tmp_path / 'attributes.json'}")["QueueUrl"]
    assert url == f"{sqs_server.endpoint}/000000000000/{name}"
    assert aws("get-queue-url", "--queue-name", name)["QueueUrl"] == url
    sent = aws("send-message", "--queue-url", url, "--message-body", "from the cli",
               "--message-attributes", json.dumps(
                   {"kind": {"DataType": "String", "StringValue": "cli"}}),
               "--message-system-attributes", json.dumps(
                   {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-a-b"}}))
    assert sent["MD5OfMessageAttributes"]
    [message] = aws("receive-message", "--queue-url", url, "--attribute-names", "All",
                    "--message-attribute-names", "All")["Messages"]
    assert message["Body"] == "from the cli"
    assert message["Attributes"]["AWSTraceHeader"] == "Root=1-a-b"
    assert message["MessageAttributes"]["kind"]["StringValue"] == "cli"
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    aws("delete-message", "--queue-url", url, "--receipt-handle", message["ReceiptHandle"])
    aws("add-permission", "--queue-url", url, "--label", "Senders",
        "--aws-account-ids", "111122223333", "--actions", "SendMessage")
    attrs = aws("get-queue-attributes", "--queue-url", url, "--attribute-names", "All")
    assert attrs["Attributes"]["VisibilityTimeout"] == "45"
    assert attrs["Attributes"]["KmsMasterKeyId"] == "alias/aws/sqs"
    assert [s["Sid"] for s in json.loads(attrs["Attributes"]["Policy"])["Statement"]] == [
        "Base", "Senders"]
    assert url in aws("list-queues", "--queue-name-prefix", name)["QueueUrls"]
    missing = aws("get-queue-url", "--queue-name", names("absent"), check=False)
    assert missing.returncode != 0
    assert "AWS.SimpleQueueService.NonExistentQueue" in missing.stderr
    assert "The specified queue does not exist." in missing.stderr
    aws("delete-queue", "--queue-url", url)
