"""One real server process for the HTTP tests, driven over loopback with httpx.

`server_database_url` is the database the server runs on: a fresh SQLite file here;
parametrize or override it to run the same tests on PostgreSQL. Each test works in its own
queues (`queue` gives a fresh, empty one), so tests share the server without interfering.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from tests.http.server import ServerProcess, start_server

_names = itertools.count()


@pytest.fixture(scope="session")
def server_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The server's database: a fresh SQLite file for the session."""
    return f"sqlite:///{tmp_path_factory.mktemp('db')}/conveyor.db"


@pytest.fixture(scope="session")
def server(server_database_url: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ServerProcess]:
    """`conveyor serve` on a free loopback port (no SQS endpoint)."""
    process = start_server(Path(tmp_path_factory.mktemp("server")),
                           ["--database", server_database_url, "--no-sqs"])
    yield process
    status = process.stop()
    assert status == 0, f"server exited with {status}:\n{process.logs()}"


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    """An httpx client on the server."""
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


NewQueue = Callable[..., str]


@pytest.fixture
def new_queue(client: httpx.Client, request: pytest.FixtureRequest) -> NewQueue:
    """Create a queue with a name unique to this test; returns the name."""

    def make(suffix: str = "", **attributes: Any) -> str:
        name = f"t{next(_names)}-{request.node.name[:40]}{suffix}"
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80]
        body: dict[str, Any] = {"name": name}
        if attributes:
            body["attributes"] = attributes
        response = client.post("/v1/queues", json=body)
        assert response.status_code == 201, response.text
        return name

    return make


@pytest.fixture
def queue(new_queue: NewQueue) -> str:
    """A fresh, empty queue with default attributes."""
    return new_queue()


@pytest.fixture
async def http(http: httpx.AsyncClient, broker: Broker) -> httpx.AsyncClient:
    """tests/conftest.py's client on the native API, with a queue `base` made first."""
    await broker.create_queue("base")
    return http
