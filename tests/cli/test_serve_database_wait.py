"""A database that cannot serve yet: refused connections and a full connection limit
(SQLSTATE 53300) are `storage_unavailable`, not `storage_error`, and `conveyor serve`
waits a bounded time for them at start instead of exiting at once (outside probe: a serve
started while PostgreSQL was at max_connections exited with storage_error)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from conveyor.cli import serve
from conveyor.errors import StorageUnavailable
from conveyor.storage.postgres.postgres_storage import PostgresStorage
from tests.cli.conftest import run_conveyor
from tests.http.server import conveyor_command


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def limited_role(postgres_url: str) -> Iterator[str]:
    """The test database's URL as a role that may open no connection (CONNECTION LIMIT 0),
    with the owner's privileges (a member of it); the role is dropped after."""
    role = f"limited_{uuid.uuid4().hex[:8]}"
    owner = urlsplit(postgres_url).username or "postgres"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0 IN ROLE "{owner}"')
    parts = urlsplit(postgres_url)
    host = parts.netloc.rpartition("@")[2]
    try:
        yield urlunsplit(parts._replace(netloc=f"{role}@{host}"))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE usename = %s", (role,))
            db.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.postgres
def test_a_role_at_its_connection_limit_is_unavailable(limited_role: str) -> None:
    async def run() -> None:
        storage = PostgresStorage(limited_role, maintenance=False)
        try:
            await storage.open()
        finally:
            await storage.close()

    with pytest.raises(StorageUnavailable, match="too many connections for role"):
        asyncio.run(run())


def test_migrate_does_not_wait_and_serve_gives_up_after_its_wait(
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/nowhere"
    result = run_conveyor("migrate", "--database", url)
    assert result.returncode == 1
    assert "[storage_unavailable]" in result.stderr and "retrying" not in result.stderr
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        serve.migrate(url, wait=1.2)
    assert 1.0 < time.monotonic() - started < 10
    said = capsys.readouterr().err
    assert said.count("the database is unavailable") == 1, said
    assert "retrying for up to 1 s" in said and "gave up waiting" in said


@pytest.mark.postgres
@pytest.mark.timeout(90)
def test_serve_waits_for_a_database_at_its_connection_limit(
        limited_role: str, postgres_url: str, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*conveyor_command(), "serve", "--host", "127.0.0.1", "--port", "0", "--no-sqs",
             "--database", limited_role],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment)
    try:
        deadline = time.monotonic() + 30
        while "retrying" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        text = log.read_text()
        assert "the database is unavailable" in text and "too many connections" in text
        assert "storage_error" not in text and "Traceback" not in text
        with psycopg.connect(postgres_url, autocommit=True) as db:
            role = urlsplit(limited_role).username
            db.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT -1')
        url = None
        while url is None or httpx.get(f"{url}/healthz", timeout=2).status_code != 200:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline + 30, log.read_text()
            time.sleep(0.1)
            found = re.search(r"HTTP API on (http://\S+)", log.read_text())
            url = found.group(1) if found else None
        assert "the database is available after" in log.read_text()
    finally:
        process.terminate()
        process.wait(20)
