"""Who is asking and where: the broker, region, account and host of one SQS request.

Queue URLs are built from the host the client called; a URL with any other host, or a
bare queue name, names the queue by its last path segment. ARNs carry the region.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from conveyor.broker.broker import Broker
from conveyor.sqs.errors import missing
from conveyor.sqs.params import Params
from conveyor.sqs.state import EndpointState
from conveyor.sqs.texts import fail

DEFAULT_REGION = "us-east-1"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([a-z0-9-]{1,32})/")
_ARN = re.compile(r"arn:[a-z-]+:sqs:([a-z0-9-]{1,32}):([0-9A-Za-z]*):([A-Za-z0-9_.-]{1,80})")


def credential_scope(authorization: str, presigned: str | None = None) -> tuple[str, str]:
    """(access key, region) from a SigV4 `Authorization` header or `X-Amz-Credential`."""
    if presigned:
        authorization = f"Credential={presigned}"
    found = _CREDENTIAL.search(authorization)
    if found is None:
        return "", DEFAULT_REGION
    return found.group(1), found.group(2)


@dataclass(frozen=True, slots=True)
class Context:
    """One request's broker, region, account and base URL (`http://host`)."""

    broker: Broker
    region: str
    account_id: str
    base_url: str
    path_queue: str | None = None
    state: EndpointState = field(default_factory=EndpointState)
    gone: asyncio.Event | None = None
    """Set once the client has disconnected (a long poll then leases nothing more)."""

    def queue_url(self, name: str) -> str:
        """`http://<host>/<account>/<name>`."""
        return f"{self.base_url}/{self.account_id}/{name}"

    def queue_arn(self, name: str) -> str:
        """`arn:aws:sqs:<region>:<account>:<name>`."""
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{name}"

    def queue_name(self, params: Params) -> str:
        """The queue a request is about: its `QueueUrl`, else the URL path it was posted to."""
        url = params.text("QueueUrl")
        if url is None:
            if self.path_queue is None:
                raise missing("QueueUrl")
            return self.path_queue
        return queue_name_from_url(url)

    def name_from_arn(self, arn: str, member: str) -> tuple[str, str]:
        """(region, queue name) of an SQS queue ARN."""
        found = self.parse_arn(arn)
        if found is None:
            raise fail("arn_format", name=member)
        return found

    @staticmethod
    def parse_arn(arn: str) -> tuple[str, str] | None:
        """(region, queue name) of an SQS queue ARN, or None when it is not one."""
        found = _ARN.fullmatch(arn)
        return None if found is None else (found.group(1), found.group(3))


def queue_name_from_url(url: str) -> str:
    """The queue name in a queue URL (any host), or the string itself when it is a name."""
    path = urlsplit(url).path if "://" in url else url
    name = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    if not name:
        raise fail("queue_missing")
    return name
