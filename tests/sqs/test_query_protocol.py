"""The query/XML protocol: raw form posts (to `/` and to the queue URL path, as the Java
SDK v1 does) and a botocore client whose SQS model is switched back to `query`."""

from __future__ import annotations

import gzip
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import httpx
import pytest
from botocore.exceptions import ClientError

from tests.sqs.conftest import BOTO_CONFIG, CREDENTIALS
from tests.sqs.server import SqsServer
from tests.sqs.test_messages import ATTRIBUTES, aws_attribute_md5
from tests.sqs.test_queues import error_of

NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}
Names = Callable[[str], str]


@pytest.fixture
def http(sqs_server: SqsServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sqs_server.endpoint) as client:
        yield client


def post(http: httpx.Client, path: str = "/", **form: str) -> tuple[int, ET.Element]:
    response = http.post(path, data={"Version": "2012-11-05", **form})
    assert response.headers["content-type"].startswith("text/xml")
    return response.status_code, ET.fromstring(response.content)


def find(root: ET.Element, path: str) -> str:
    node = root.find(path, NS)
    assert node is not None, f"{path} not in {ET.tostring(root)!r}"
    return node.text or ""


def test_create_send_receive_via_form_posts(http: httpx.Client, names: Names) -> None:
    name = names("query")
    status, root = post(http, Action="CreateQueue", QueueName=name,
                        **{"Attribute.1.Name": "VisibilityTimeout", "Attribute.1.Value": "40",
                           "Tag.1.Key": "team", "Tag.1.Value": "mail"})
    assert status == 200 and root.tag == "{{{}}}CreateQueueResponse".format(NS["sqs"])
    url = find(root, "sqs:CreateQueueResult/sqs:QueueUrl")
    assert url.endswith(f"/000000000000/{name}")
    assert find(root, "sqs:ResponseMetadata/sqs:RequestId")
    path = f"/000000000000/{name}"
    # the Java SDK v1 posts to the queue's path and leaves QueueUrl out
    status, root = post(http, path, Action="SendMessage", MessageBody="hello <xml> & \r",
                        **{"MessageAttribute.1.Name": "text",
                           "MessageAttribute.1.Value.DataType": "String",
                           "MessageAttribute.1.Value.StringValue": "héllo"})
    assert status == 200
    assert find(root, "sqs:SendMessageResult/sqs:MD5OfMessageAttributes") == \
        aws_attribute_md5({"text": ATTRIBUTES["text"]})
    status, root = post(http, path, Action="ReceiveMessage", **{
        "AttributeName.1": "All", "MessageAttributeName.1": "All"})
    message = root.find("sqs:ReceiveMessageResult/sqs:Message", NS)
    assert message is not None
    assert find(message, "sqs:Body") == "hello <xml> & \r"
    system = {find(a, "sqs:Name"): find(a, "sqs:Value")
              for a in message.findall("sqs:Attribute", NS)}
    assert system["ApproximateReceiveCount"] == "1"
    [attribute] = message.findall("sqs:MessageAttribute", NS)
    assert find(attribute, "sqs:Name") == "text"
    assert find(attribute, "sqs:Value/sqs:DataType") == "String"
    assert find(attribute, "sqs:Value/sqs:StringValue") == "héllo"
    status, root = post(http, "/", Action="DeleteMessage", QueueUrl=url,
                        ReceiptHandle=find(message, "sqs:ReceiptHandle"))
    assert status == 200 and root.find("sqs:ResponseMetadata", NS) is not None
    status, root = post(http, path, Action="GetQueueAttributes", **{
        "AttributeName.1": "VisibilityTimeout", "AttributeName.2": "ApproximateNumberOfMessages"})
    attrs = {find(a, "sqs:Name"): find(a, "sqs:Value")
             for a in root.findall("sqs:GetQueueAttributesResult/sqs:Attribute", NS)}
    assert attrs == {"VisibilityTimeout": "40", "ApproximateNumberOfMessages": "0"}
    status, root = post(http, path, Action="ListQueueTags")
    assert find(root, "sqs:ListQueueTagsResult/sqs:Tag/sqs:Key") == "team"


def test_batches_over_query(http: httpx.Client, names: Names) -> None:
    name = names("qbatch")
    post(http, Action="CreateQueue", QueueName=name)
    path = f"/000000000000/{name}"
    status, root = post(http, path, Action="SendMessageBatch", **{
        "SendMessageBatchRequestEntry.1.Id": "one",
        "SendMessageBatchRequestEntry.1.MessageBody": "1",
        "SendMessageBatchRequestEntry.2.Id": "two",
        "SendMessageBatchRequestEntry.2.MessageBody": "bad \x01",
        "SendMessageBatchRequestEntry.2.DelaySeconds": "5"})
    assert status == 200
    result = root.find("sqs:SendMessageBatchResult", NS)
    assert result is not None
    assert [find(e, "sqs:Id") for e in result.findall(
        "sqs:SendMessageBatchResultEntry", NS)] == ["one"]
    [failed] = result.findall("sqs:BatchResultErrorEntry", NS)
    assert find(failed, "sqs:Id") == "two"
    assert find(failed, "sqs:Code") == "InvalidMessageContents"
    assert find(failed, "sqs:SenderFault") == "true"
    status, root = post(http, path, Action="SendMessageBatch", **{
        "SendMessageBatchRequestEntry.1.Id": "same",
        "SendMessageBatchRequestEntry.1.MessageBody": "1",
        "SendMessageBatchRequestEntry.2.Id": "same",
        "SendMessageBatchRequestEntry.2.MessageBody": "2"})
    assert status == 400
    assert find(root, "sqs:Error/sqs:Code") == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"


def test_errors_in_xml(http: httpx.Client) -> None:
    status, root = post(http, Action="GetQueueUrl", QueueName="no-such-queue")
    assert status == 400 and root.tag == "{{{}}}ErrorResponse".format(NS["sqs"])
    assert find(root, "sqs:Error/sqs:Type") == "Sender"
    assert find(root, "sqs:Error/sqs:Code") == "AWS.SimpleQueueService.NonExistentQueue"
    assert find(root, "sqs:Error/sqs:Message") == \
        "The specified queue does not exist for this wsdl version."
    assert find(root, "sqs:RequestId")
    status, root = post(http, Action="Frobnicate")
    assert status == 400 and find(root, "sqs:Error/sqs:Code") == "InvalidAction"
    status, root = post(http, Action="SendMessage", MessageBody="x")
    assert status == 400 and find(root, "sqs:Error/sqs:Code") == "MissingParameter"
    status, root = post(http, Action="ReceiveMessage", QueueUrl="q", WaitTimeSeconds="21")
    assert status == 400 and find(root, "sqs:Error/sqs:Code") == "InvalidParameterValue"


def test_errors_in_json(http: httpx.Client) -> None:
    headers = {"content-type": "application/x-amz-json-1.0",
               "x-amz-target": "AmazonSQS.GetQueueUrl"}
    response = http.post("/", content=json.dumps({"QueueName": "no-such-queue"}),
                         headers=headers)
    assert response.status_code == 400
    assert response.json()["__type"] == "com.amazonaws.sqs#QueueDoesNotExist"
    assert response.headers["x-amzn-query-error"] == \
        "AWS.SimpleQueueService.NonExistentQueue;Sender"
    response = http.post("/", content=b"{not json", headers=headers)
    assert response.status_code == 400
    # Not in the model: SQS names its __type with an Exception suffix; the code is the header's.
    assert response.json()["__type"] == "com.amazonaws.sqs#InvalidParameterValueException"
    assert response.headers["x-amzn-query-error"] == "InvalidParameterValue;Sender"
    response = http.post("/", content=b"{}", headers={**headers,
                                                       "x-amz-target": "AmazonSQS.Nope"})
    assert response.json()["__type"] == "com.amazonaws.sqs#InvalidAction"


def test_get_requests_and_member_spellings(http: httpx.Client, names: Names) -> None:
    name = names("qget")
    response = http.get("/", params={"Action": "CreateQueue", "QueueName": name,
                                     "Attributes.1.key": "DelaySeconds",
                                     "Attributes.1.value": "3"})
    assert response.status_code == 200
    _status, root = post(http, f"/000000000000/{name}", Action="GetQueueAttributes", **{
        "AttributeNames.1": "DelaySeconds"})
    assert find(root, "sqs:GetQueueAttributesResult/sqs:Attribute/sqs:Value") == "3"


def test_region_comes_from_the_signature(http: httpx.Client, names: Names) -> None:
    name = names("signed")
    auth = ("AWS4-HMAC-SHA256 Credential=x/20260101/eu-west-3/sqs/aws4_request, "
            "SignedHeaders=host, Signature=0")
    response = http.post("/", data={"Action": "CreateQueue", "QueueName": name},
                         headers={"authorization": auth})
    assert response.status_code == 200
    status, _ = post(http, Action="GetQueueUrl", QueueName=name)
    assert status == 400  # not in us-east-1
    response = http.post("/", data={"Action": "GetQueueAttributes", "QueueUrl": name,
                                    "AttributeName.1": "QueueArn"},
                         headers={"authorization": auth})
    assert f"arn:aws:sqs:eu-west-3:000000000000:{name}" in response.text


# a botocore client speaking query -----------------------------------------------------
LIST_MEMBERS = {
    "AttributeNameList": "AttributeName", "MessageAttributeNameList": "MessageAttributeName",
    "MessageSystemAttributeList": "MessageSystemAttributeName", "TagKeyList": "TagKey",
    "QueueUrlList": "QueueUrl", "MessageList": "Message",
    "BatchResultErrorEntryList": "BatchResultErrorEntry",
    "ListMessageMoveTasksResultEntryList": "ListMessageMoveTasksResultEntry",
    "AWSAccountIdList": "AWSAccountId", "ActionNameList": "ActionName",
}
MAP_MEMBERS = {  # structure member -> query element name
    "Attributes": "Attribute", "MessageAttributes": "MessageAttribute",
    "MessageSystemAttributes": "MessageSystemAttribute", "Tags": "Tag", "tags": "Tag",
}
LEGACY_CODES = {
    "QueueDoesNotExist": "AWS.SimpleQueueService.NonExistentQueue",
    "QueueNameExists": "QueueAlreadyExists",
    "MessageNotInflight": "AWS.SimpleQueueService.MessageNotInflight",
    "TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    "BatchEntryIdsNotDistinct": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "EmptyBatchRequest": "AWS.SimpleQueueService.EmptyBatchRequest",
    "UnsupportedOperation": "AWS.SimpleQueueService.UnsupportedOperation",
}


def query_model() -> dict[str, Any]:
    """botocore's SQS model with its protocol switched to query and the legacy XML names
    (the ones the pre-JSON model had) put back."""
    source = Path(botocore.__file__).parent / "data/sqs/2012-11-05/service-2.json.gz"
    model = json.loads(gzip.decompress(source.read_bytes()))
    meta = model["metadata"]
    meta.update(protocol="query", protocols=["query"],
                xmlNamespace="http://queue.amazonaws.com/doc/2012-11-05/")
    meta.pop("awsQueryCompatible", None)
    meta.pop("jsonVersion", None)
    meta.pop("targetPrefix", None)
    for name, operation in model["operations"].items():
        if "output" in operation:
            operation["output"]["resultWrapper"] = f"{name}Result"
    shapes = model["shapes"]
    for name, shape in shapes.items():
        if shape["type"] == "list" and shape.get("flattened"):
            element = LIST_MEMBERS.get(name) or name.removesuffix("List")
            shape["member"]["locationName"] = element
        if shape["type"] == "map":
            tag_map = name == "TagMap"
            shape["key"]["locationName"] = "Key" if tag_map else "Name"
            shape["value"]["locationName"] = "Value"
        if shape["type"] == "structure":
            for member_name, member in shape.get("members", {}).items():
                target = shapes[member["shape"]]
                if target["type"] == "map" and member_name in MAP_MEMBERS:
                    member["locationName"] = MAP_MEMBERS[member_name]
        if shape.get("exception"):
            shape["error"] = {"code": LEGACY_CODES.get(name, name), "httpStatusCode": 400,
                              "senderFault": True}
    return model


@pytest.fixture(scope="module")
def query_data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("botocore-data")
    target = root / "sqs" / "2012-11-05"
    target.mkdir(parents=True)
    (target / "service-2.json").write_text(json.dumps(query_model()))
    return root


@pytest.fixture
def query_sqs(query_data_path: Path, sqs_server: SqsServer,
              monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DATA_PATH", str(query_data_path))
    client = boto3.session.Session().client(
        "sqs", endpoint_url=sqs_server.endpoint, region_name="us-east-1", config=BOTO_CONFIG,
        **CREDENTIALS)
    assert client.meta.service_model.protocol == "query"
    assert os.environ["AWS_DATA_PATH"]
    return client


def test_botocore_query_client_end_to_end(query_sqs: Any, names: Names) -> None:
    sqs = query_sqs
    events: list[str] = []
    sqs.meta.events.register("before-send.sqs.*", lambda request, **_: events.append(
        request.headers.get("Content-Type", b"").decode()
        if isinstance(request.headers.get("Content-Type"), bytes)
        else str(request.headers.get("Content-Type"))))
    dlq = sqs.create_queue(QueueName=names("qdlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=names("qsrc"), Attributes={
        "VisibilityTimeout": "40", "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})}, tags={"a": "b"})[
        "QueueUrl"]
    assert all("x-www-form-urlencoded" in e for e in events), events
    assert url in sqs.list_queues(QueueNamePrefix=url.rsplit("/", 1)[1])["QueueUrls"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"a": "b"}
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [url]
    sent = sqs.send_message(QueueUrl=url, MessageBody="q", MessageAttributes=ATTRIBUTES)
    assert sent["MD5OfMessageAttributes"] == aws_attribute_md5(ATTRIBUTES)
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "A"}, {"Id": "b", "MessageBody": "\x00"}])
    assert [e["Id"] for e in batch["Successful"]] == ["a"]
    assert batch["Failed"][0]["Code"] == "InvalidMessageContents"
    assert batch["Failed"][0]["SenderFault"] is True
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                              MessageAttributeNames=["All"], AttributeNames=["All"])["Messages"]
    while len(got) < 2:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                   MessageAttributeNames=["All"])["Messages"]
    first = next(m for m in got if m["Body"] == "q")
    assert first["MessageAttributes"] == ATTRIBUTES
    assert first["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "x", "ReceiptHandle": first["ReceiptHandle"], "VisibilityTimeout": 60}])
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    assert len(deleted["Successful"]) == 2
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as exc:
        sqs.get_queue_url(QueueName="no-such-queue")
    assert error_of(exc)[0] == "AWS.SimpleQueueService.NonExistentQueue"
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": "s", "ReceiptHandle": "h"}, {"Id": "s", "ReceiptHandle": "h"}])
    with pytest.raises(ClientError) as exc:
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=21)
    assert error_of(exc)[0] == "InvalidParameterValue"
    tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)
    assert tasks.get("Results", []) == []


def test_json_received_message_leaves_absent_members_out(http: httpx.Client,
                                                         names: Names) -> None:
    def call(action: str, body: dict[str, Any]) -> dict[str, Any]:
        response = http.post("/", content=json.dumps(body), headers={
            "content-type": "application/x-amz-json-1.0",
            "x-amz-target": f"AmazonSQS.{action}"})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    url = call("CreateQueue", {"QueueName": names("qnulls")})["QueueUrl"]
    call("SendMessage", {"QueueUrl": url, "MessageBody": "x"})
    (message,) = call("ReceiveMessage", {"QueueUrl": url})["Messages"]
    # No attributes asked for: SQS omits the members rather than sending nulls.
    assert set(message) == {"MessageId", "ReceiptHandle", "MD5OfBody", "Body"}
