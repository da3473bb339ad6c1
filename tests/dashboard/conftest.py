"""A real `conveyor serve` (SQLite, no SQS endpoint) for the dashboard tests, and a browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dashboard.browser import browser
from tests.http.server import ServerProcess, start_server

__all__ = ["browser"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`conveyor serve` on a free loopback port with a fresh SQLite file."""
    directory = Path(tmp_path_factory.mktemp("dashboard"))
    process = start_server(directory, ["--database", f"sqlite:///{directory}/c.db",
                                       "--no-sqs"])
    yield process
    status = process.stop()
    assert status == 0, f"server exited with {status}:\n{process.logs()}"


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """An httpx client on the server."""
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http
