"""Fixtures for the SQS endpoint: one live server per backend for the session.

A server (uvicorn + Broker) per test would cost a PostgreSQL database and a server start
each time; instead each backend gets one server and every test works on queues with
names of its own (`names`), so tests stay independent.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.sqs.server import SqsServer

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
CREDENTIALS = {"aws_access_key_id": "x", "aws_secret_access_key": "x"}
BOTO_CONFIG = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=60)


@pytest.fixture(scope="session", params=BACKENDS)
def sqs_database_url(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database for the session's SQS server, on each backend in turn."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqs") / "conveyor.db"
        yield f"sqlite:///{path}"
        return
    server = request.getfixturevalue("postgres_server")
    database = server.create_database()
    try:
        yield database.url
    finally:
        server.drop_database(database.name)


@pytest.fixture(scope="session")
def sqs_server(sqs_database_url: str) -> Iterator[SqsServer]:
    """A live SQS endpoint on a free loopback port."""
    server = SqsServer(sqs_database_url)
    try:
        yield server
    finally:
        server.close()


ClientFactory = Callable[..., Any]


@pytest.fixture(scope="session")
def make_client(sqs_server: SqsServer) -> ClientFactory:
    """boto3 SQS clients for the server, one per (region, endpoint), cached."""
    cache: dict[tuple[str, str], Any] = {}

    def make(region: str = "us-east-1", endpoint: str | None = None) -> Any:
        key = (region, endpoint or sqs_server.endpoint)
        if key not in cache:
            cache[key] = boto3.session.Session().client(
                "sqs", endpoint_url=key[1], region_name=region, config=BOTO_CONFIG,
                **CREDENTIALS)
        return cache[key]

    return make


@pytest.fixture
def sqs(make_client: ClientFactory) -> Any:
    """A boto3 SQS client in us-east-1."""
    return make_client()


_counter = itertools.count()


@pytest.fixture
def names() -> Callable[[str], str]:
    """Queue names unique to this test: names("jobs") -> "jobs-<unique>"."""
    tag = f"{next(_counter)}-{uuid.uuid4().hex[:8]}"

    def name(base: str = "q") -> str:
        if base.endswith(".fifo"):
            return f"{base[:-5]}-{tag}.fifo"
        return f"{base}-{tag}"

    return name


@pytest.fixture
def queue(sqs: Any, names: Callable[[str], str]) -> str:
    """The URL of a fresh standard queue."""
    return str(sqs.create_queue(QueueName=names("q"))["QueueUrl"])
