"""A worker process whose server is killed (`kill -9`) and started again 5 s later: its log
says so in two lines (one WARNING, no traceback, one line when the server is back), and a
job sent during the outage runs once the server is back, exactly once."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.client.sync_client import Client
from conveyor.worker import App
from tests.http.server import ServerProcess, start_server
from tests.worker.apps import sample
from tests.worker.test_processes import Procs, _procs

OUTAGE = 5.0  # seconds the server stays down


class Server:
    """A `conveyor serve` on one SQLite file and one port, killed and started again."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "s.db"
        with socket.socket() as probe:  # a free port, kept across restarts
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: ServerProcess | None = None

    def start(self) -> ServerProcess:
        self.process = start_server(self.tmp, ["--database", f"sqlite:///{self.db}",
                                               "--no-sqs", "--port", str(self.port)])
        return self.process

    def kill(self) -> None:
        assert self.process is not None
        self.process.process.kill()
        self.process.process.wait()


def send(url: str, i: int) -> None:
    """Enqueue job `i` of the sample app's `record` (it notes "done i" when it runs)."""
    app = App(url)
    app.tasks.update(sample.app.tasks)
    try:
        app.send_sync([app.tasks["record"].call((i,), {})])
    finally:
        app.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    made = Server(tmp_path)
    made.start()
    try:
        yield made
    finally:
        if made.process is not None:
            made.process.stop()


@pytest.fixture
def procs(server: Server, tmp_path: Path) -> Iterator[Procs]:
    """Worker processes of the sample app on the server (five queues, so five receive
    loops fail at once while it is down)."""
    assert server.process is not None
    yield from _procs(server.process.url, tmp_path)


def test_an_outage_is_two_lines_and_loses_no_job(server: Server, procs: Procs) -> None:
    url = procs.url
    send(url, 0)  # through the server
    worker = procs.start()
    procs.wait(lambda: [r[3] for r in procs.lines("done")] == ["0"], timeout=30,
               what="job 0 done")
    time.sleep(0.5)  # (its acknowledgement is on its way)
    before = len(procs.log.read_text())

    server.kill()
    send(f"sqlite:///{server.db}", 1)  # while it is down: straight into its file
    time.sleep(OUTAGE)
    server.start()
    procs.wait(lambda: sorted(r[3] for r in procs.lines("done")) == ["0", "1"],
               timeout=30, what="job 1 done once the server is back")
    deadline = time.monotonic() + 15  # (checked below: the log says what went wrong)
    while "reachable again" not in procs.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    with Client(url) as client:  # acknowledged: not coming back
        deadline = time.monotonic() + 10
        while client.queue_stats("plain").total and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.queue_stats("plain").total == 0
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0

    during = procs.log.read_text()[before:]
    lines = [line for line in during.splitlines() if line.strip()]
    assert "Traceback" not in during, during
    down = [line for line in lines if re.search(r"is (still )?(unreachable|unavailable)", line)]
    back = [line for line in lines if "reachable again" in line]
    # One warning (a reminder comes only after 30 s), naming the server and what failed.
    assert len(down) == 1, during
    assert f"the server {url} is unreachable" in down[0] and "retrying" in down[0]
    assert "failed" in down[0]
    assert len(back) == 1 and re.search(r"after \d+\.\d s down", back[0]), during
    rest = [line for line in lines if line not in down + back and "stopped after" not in line]
    assert rest == [], during
    assert [r[3] for r in procs.lines("done")] == ["0", "1"]  # each exactly once
