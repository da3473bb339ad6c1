"""Queue actions through boto3 (AWS JSON 1.0) against a live endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.sqs.conftest import ClientFactory
from tests.sqs.server import SqsServer

Names = Callable[[str], str]


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    """(Code, QueryErrorCode, HTTP status) of a boto3 error."""
    response: Any = exc.value.response
    return (response["Error"]["Code"], response["Error"].get("QueryErrorCode", ""),
            response["ResponseMetadata"]["HTTPStatusCode"])


def test_create_get_url_and_idempotent_create(sqs: Any, sqs_server: SqsServer,
                                              names: Names) -> None:
    name = names("emails")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    assert url == f"{sqs_server.endpoint}/000000000000/{name}"
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    # the same attributes again: the same URL; different ones: QueueAlreadyExists
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})[
        "QueueUrl"] == url
    with pytest.raises(sqs.exceptions.QueueNameExists) as exc:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "50"})
    assert error_of(exc) == ("QueueAlreadyExists", "QueueNameExists", 400)


def test_queue_does_not_exist_has_both_codes(sqs: Any) -> None:
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as exc:
        sqs.get_queue_url(QueueName="no-such-queue")
    assert error_of(exc) == ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
                             400)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl="http://elsewhere:1/000000000000/no-such-queue",
                         MessageBody="x")


@pytest.mark.parametrize("name", ["has space", "x" * 81, "dots.not.fifo", ""])
def test_invalid_queue_names(sqs: Any, name: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName=name)
    assert error_of(exc)[0] in ("InvalidParameterValue", "MissingParameter")


def test_queue_url_from_another_host_or_a_bare_name(sqs: Any, queue: str) -> None:
    name = queue.rsplit("/", 1)[1]
    sqs.send_message(QueueUrl=f"https://sqs.us-east-1.amazonaws.com/123456789012/{name}",
                     MessageBody="one")
    sqs.send_message(QueueUrl=name, MessageBody="two")
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]
    assert attrs == {"ApproximateNumberOfMessages": "2"}


def test_urls_use_the_host_the_client_called(make_client: ClientFactory,
                                             sqs_server: SqsServer, names: Names) -> None:
    other = make_client(endpoint=f"http://localhost:{sqs_server.port}")
    url = other.create_queue(QueueName=names("host"))["QueueUrl"]
    assert url.startswith(f"http://localhost:{sqs_server.port}/000000000000/")


def test_list_queues_prefix_and_pagination(sqs: Any, names: Names) -> None:
    prefix = names("list")
    urls = [sqs.create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(5)]
    assert sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"] == urls
    assert "NextToken" not in sqs.list_queues(QueueNamePrefix=prefix)
    seen: list[str] = []
    kwargs: dict[str, Any] = {"QueueNamePrefix": prefix, "MaxResults": 2}
    while True:
        page = sqs.list_queues(**kwargs)
        seen += page["QueueUrls"]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert seen == urls
    paginated = [u for p in sqs.get_paginator("list_queues").paginate(
        QueueNamePrefix=prefix, PaginationConfig={"PageSize": 3}) for u in p["QueueUrls"]]
    assert paginated == urls
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=names("none"))
    with pytest.raises(ClientError) as exc:
        sqs.list_queues(MaxResults=1001)
    assert error_of(exc)[0] == "InvalidParameterValue"


def test_regions_are_namespaces(make_client: ClientFactory, names: Names) -> None:
    east, west = make_client("us-east-1"), make_client("us-west-2")
    name = names("regional")
    east_url = east.create_queue(QueueName=name)["QueueUrl"]
    with pytest.raises(west.exceptions.QueueDoesNotExist):
        west.get_queue_url(QueueName=name)
    west.create_queue(QueueName=name, Attributes={"DelaySeconds": "5"})
    east.send_message(QueueUrl=east_url, MessageBody="east")
    arn = west.get_queue_attributes(QueueUrl=name, AttributeNames=["All"])["Attributes"]
    assert arn["QueueArn"] == f"arn:aws:sqs:us-west-2:000000000000:{name}"
    assert arn["ApproximateNumberOfMessages"] == "0"
    assert arn["DelaySeconds"] == "5"


def test_delete_and_purge(sqs: Any, queue: str) -> None:
    sqs.send_message_batch(QueueUrl=queue, Entries=[
        {"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)])
    sqs.purge_queue(QueueUrl=queue)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    sqs.delete_queue(QueueUrl=queue)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=queue)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.delete_queue(QueueUrl=queue)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.purge_queue(QueueUrl=queue)


def test_get_and_set_attributes(sqs: Any, queue: str) -> None:
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    name = queue.rsplit("/", 1)[1]
    assert attrs["VisibilityTimeout"] == "30"
    assert attrs["DelaySeconds"] == "0"
    assert attrs["MessageRetentionPeriod"] == "345600"
    assert attrs["MaximumMessageSize"] == "1048576"
    assert attrs["ReceiveMessageWaitTimeSeconds"] == "0"
    assert attrs["QueueArn"] == f"arn:aws:sqs:us-east-1:000000000000:{name}"
    for count in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                  "ApproximateNumberOfMessagesDelayed"):
        assert attrs[count] == "0"
    assert int(attrs["CreatedTimestamp"]) <= int(attrs["LastModifiedTimestamp"])
    assert "RedrivePolicy" not in attrs and "FifoQueue" not in attrs
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={
        "VisibilityTimeout": "60", "DelaySeconds": "10", "MessageRetentionPeriod": "3600",
        "MaximumMessageSize": "2048", "ReceiveMessageWaitTimeSeconds": "20"})
    got = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "VisibilityTimeout", "DelaySeconds", "MessageRetentionPeriod", "MaximumMessageSize",
        "ReceiveMessageWaitTimeSeconds"])["Attributes"]
    assert got == {"VisibilityTimeout": "60", "DelaySeconds": "10",
                   "MessageRetentionPeriod": "3600", "MaximumMessageSize": "2048",
                   "ReceiveMessageWaitTimeSeconds": "20"}
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=queue)


@pytest.mark.parametrize(("attributes", "code"), [
    ({"VisibilityTimeout": "43201"}, "InvalidAttributeValue"),
    ({"DelaySeconds": "901"}, "InvalidAttributeValue"),
    ({"MessageRetentionPeriod": "59"}, "InvalidAttributeValue"),
    ({"MaximumMessageSize": "1023"}, "InvalidAttributeValue"),
    ({"ReceiveMessageWaitTimeSeconds": "21"}, "InvalidAttributeValue"),
    ({"VisibilityTimeout": "soon"}, "InvalidAttributeValue"),
    # AWS answers InvalidParameterValue for the JSON policies, naming the value.
    ({"RedrivePolicy": "{not json"}, "InvalidParameterValue"),
    ({"RedrivePolicy": json.dumps({"maxReceiveCount": 3})}, "InvalidParameterValue"),
    ({"RedriveAllowPolicy": json.dumps({"redrivePermission": "some"})},
     "InvalidParameterValue"),
    ({"Policy": "[1]"}, "InvalidAttributeValue"),
    ({"Policy": "{nope"}, "InvalidAttributeValue"),
    ({"Nonsense": "1"}, "InvalidAttributeName"),
    ({"ApproximateNumberOfMessages": "1"}, "InvalidAttributeName"),
    ({"ContentBasedDeduplication": "true"}, "InvalidAttributeName"),
    ({"FifoThroughputLimit": "perQueue"}, "InvalidAttributeName"),
])
def test_invalid_attributes(sqs: Any, queue: str, attributes: dict[str, str],
                            code: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes=attributes)
    assert error_of(exc)[0] == code


def test_unknown_attribute_name_on_get(sqs: Any, queue: str) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Bogus"])  # type: ignore[list-item]
    assert error_of(exc)[0] == "InvalidAttributeName"


def test_redrive_policy_round_trip(sqs: Any, names: Names) -> None:
    dlq = sqs.create_queue(QueueName=names("dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    source = sqs.create_queue(QueueName=names("src"), Attributes={"RedrivePolicy": policy})[
        "QueueUrl"]
    got = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["RedrivePolicy"])[
        "Attributes"]["RedrivePolicy"]
    assert json.loads(got) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [source]
    sqs.set_queue_attributes(QueueUrl=source, Attributes={"RedrivePolicy": ""})
    assert "RedrivePolicy" not in sqs.get_queue_attributes(
        QueueUrl=source, AttributeNames=["All"])["Attributes"]
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == []
    missing = json.dumps({"deadLetterTargetArn": dlq_arn + "-gone", "maxReceiveCount": 3})
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=source, Attributes={"RedrivePolicy": missing})
    assert error_of(exc)[0] == "InvalidParameterValue"


def test_list_dead_letter_source_queues_pages(sqs: Any, names: Names) -> None:
    dlq = sqs.create_queue(QueueName=names("dlq"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
    prefix = names("src")
    sources = [sqs.create_queue(QueueName=f"{prefix}-{i}", Attributes={
        "RedrivePolicy": policy})["QueueUrl"] for i in range(3)]
    first = sqs.list_dead_letter_source_queues(QueueUrl=dlq, MaxResults=2)
    assert first["queueUrls"] == sources[:2]
    second = sqs.list_dead_letter_source_queues(QueueUrl=dlq, MaxResults=2,
                                                NextToken=first["NextToken"])
    assert second["queueUrls"] == sources[2:] and "NextToken" not in second


def test_redrive_allow_policy_is_enforced(sqs: Any, names: Names) -> None:
    dlq = sqs.create_queue(QueueName=names("dlq"), Attributes={
        "RedriveAllowPolicy": json.dumps({"redrivePermission": "denyAll"})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert json.loads(arn["RedriveAllowPolicy"]) == {"redrivePermission": "denyAll"}
    policy = json.dumps({"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": 1})
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName=names("src"), Attributes={"RedrivePolicy": policy})
    assert error_of(exc)[0] == "InvalidParameterValue"
    allowed = names("allowed")
    allowed_arn = f"arn:aws:sqs:us-east-1:000000000000:{allowed}"
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": json.dumps(
        {"redrivePermission": "byQueue", "sourceQueueArns": [allowed_arn]})})
    sqs.create_queue(QueueName=allowed, Attributes={"RedrivePolicy": policy})
    with pytest.raises(ClientError):
        sqs.create_queue(QueueName=names("other"), Attributes={"RedrivePolicy": policy})


def test_tags(sqs: Any, names: Names) -> None:
    url = sqs.create_queue(QueueName=names("tagged"), tags={"team": "mail"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "mail"}
    sqs.tag_queue(QueueUrl=url, Tags={"env": "prod", "team": "ops"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "ops", "env": "prod"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["team", "absent"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "prod"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["env"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {}  # as SQS answers
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.list_queue_tags(QueueUrl=url + "-gone")


def test_fifo_queue_attributes(sqs: Any, names: Names) -> None:
    name = names("orders.fifo")
    url = sqs.create_queue(QueueName=name, Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true",
        "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"})[
        "QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert attrs["ContentBasedDeduplication"] == "true"
    assert attrs["DeduplicationScope"] == "messageGroup"
    assert attrs["FifoThroughputLimit"] == "perMessageGroupId"
    with pytest.raises(ClientError):  # a .fifo name needs FifoQueue
        sqs.create_queue(QueueName=names("nofifo.fifo"))
    with pytest.raises(ClientError):  # FifoQueue needs a .fifo name
        sqs.create_queue(QueueName=names("plain"), Attributes={"FifoQueue": "true"})
