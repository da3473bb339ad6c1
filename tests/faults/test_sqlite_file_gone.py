"""A real `conveyor serve` whose SQLite file is deleted, replaced or read-only under it.

Deleted (`rm q.db q.db-wal q.db-shm`) or replaced (another file renamed over it), the open
connection would go on writing into an inode no path names: every send 201 and gone at the
next start. The server must answer 503 instead, from the first request after the change,
and `/readyz` must say `storage_file_gone`. A file the server's user cannot write (root
ignores permissions, so the server runs as `nobody`) must make `/readyz` say
`storage_read_only`, not ready.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.helpers import assert_error
from tests.http.server import ServerProcess, start_server

SEND = {"messages": [{"body": "acked"}]}
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@contextlib.contextmanager
def serving(directory: Path, db: Path, *, wrapper: list[str] | None = None,
            env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    server = start_server(directory, ["--no-sqs", "--database", f"sqlite:///{db}"],
                          wrapper=wrapper or [], env=env)
    try:
        yield server
    finally:
        server.stop()


def send(url: str, queue: str = "q") -> httpx.Response:
    return httpx.post(f"{url}/v1/queues/{queue}/messages", json=SEND, timeout=10)


def assert_file_gone(url: str, said: str) -> None:
    """Sends, receives and reads are 503 saying why; /readyz is not ready, saying so."""
    error = assert_error(send(url), 503, "storage_unavailable")
    assert f"was {said}" in error["message"] and "restart" in error["message"], error
    received = httpx.post(f"{url}/v1/queues/q/messages/receive", json={}, timeout=10)
    assert_error(received, 503, "storage_unavailable")
    assert_error(httpx.get(f"{url}/v1/queues/q", timeout=10), 503, "storage_unavailable")
    ready = assert_error(httpx.get(f"{url}/readyz", timeout=10), 503, "storage_file_gone")
    assert f"was {said}" in ready["message"], ready


class Senders:
    """Threads sending one message at a time: (began, ended, status) of each request."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.url = url
        self.answers: list[tuple[float, float, int]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.stop.is_set():
                began = time.monotonic()
                status = http.post(f"{self.url}/v1/queues/q/messages", json=SEND).status_code
                self.answers.append((began, time.monotonic(), status))

    def __enter__(self) -> Senders:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


def test_a_deleted_file_refuses_every_request_after_the_delete(tmp_path: Path) -> None:
    db = tmp_path / "data" / "q.db"
    with serving(tmp_path, db) as server:
        assert httpx.post(f"{server.url}/v1/queues", json={"name": "q"}).status_code == 201
        with Senders(server.url) as load:
            time.sleep(0.5)
            deleting = time.monotonic()
            for name in ("q.db", "q.db-wal", "q.db-shm"):
                (db.parent / name).unlink()
            deleted = time.monotonic()
            time.sleep(1.0)
        # A request under way during the delete may go either way; none after it is 201.
        before = [status for _, ended, status in load.answers if ended < deleting]
        after = [status for began, _, status in load.answers if began > deleted]
        assert before and set(before) == {201}, before
        assert after and set(after) == {503}, sorted(set(after))
        assert_file_gone(server.url, "deleted")
        logs = server.logs()
    assert "was deleted while this server had it open" in logs
    assert "Traceback" not in logs, logs
    # Nothing acknowledged was durable at the path, and nothing more was acknowledged: a
    # restart opens a new, empty file there.
    with serving(tmp_path, db) as server:
        assert_error(httpx.get(f"{server.url}/v1/queues/q"), 404, "queue_not_found")


def test_a_file_renamed_over_it_refuses_writes(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    with serving(tmp_path, db) as server:
        assert httpx.post(f"{server.url}/v1/queues", json={"name": "q"}).status_code == 201
        assert send(server.url).status_code == 201
        os.rename(other, db)
        assert_file_gone(server.url, "replaced by another file")


def test_the_wal_deleted_alone_refuses_writes(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    with serving(tmp_path, db) as server:
        assert httpx.post(f"{server.url}/v1/queues", json={"name": "q"}).status_code == 201
        (tmp_path / "q.db-wal").unlink()
        assert_file_gone(server.url, "left without its -wal file")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory `nobody` can reach (pytest's tmp_path is under root's 0700 one)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the server as another user")
    where = Path(tempfile.mkdtemp(prefix="conveyor-ro-"))
    try:
        where.chmod(0o755)
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def test_readyz_is_not_ready_on_a_read_only_file(shared_dir: Path) -> None:
    data = shared_dir / "data"
    data.mkdir()
    db = data / "q.db"
    env = {"HOME": str(shared_dir)}
    can_run = subprocess.run([*NOBODY, "true"], capture_output=True, check=False)
    if can_run.returncode != 0:
        pytest.skip(f"setpriv cannot switch user here: {can_run.stderr!r}")
    os.chown(data, 65534, 65534)
    with serving(shared_dir, db, wrapper=NOBODY, env=env) as server:
        assert httpx.post(f"{server.url}/v1/queues", json={"name": "q"}).status_code == 201
        assert send(server.url).status_code == 201
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 200, ready.text
    db.chmod(0o444)
    with serving(shared_dir, db, wrapper=NOBODY, env=env) as server:
        error = assert_error(httpx.get(f"{server.url}/readyz"), 503, "storage_read_only")
        assert "readonly" in error["message"] and str(db) in error["message"], error
        assert_error(send(server.url), 503, "storage_unavailable")
        assert_error(httpx.get(f"{server.url}/readyz"), 503, "storage_read_only")
        # Reads go on: the queue and its one message are there.
        assert httpx.get(f"{server.url}/v1/queues/q").status_code == 200
        logs = server.logs()
    assert "Traceback" not in logs, logs
