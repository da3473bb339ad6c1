"""`kill -9` of `conveyor serve` during a bounded load, on SQLite (the file) and PostgreSQL.

After a restart on the same database: every send answered 2xx is there or was delivered,
no message whose delete was acknowledged comes back, and the counts reconcile exactly.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.load import Load, create_queue, drain, reconcile
from tests.http.server import start_server

KILLS = 1  # per run here; benchmarks/trust_soak.py kills many times


@pytest.mark.timeout(110)
def test_kill_9_loses_nothing(database_url: str, tmp_path: Path) -> None:
    server = start_server(tmp_path, ["--database", database_url, "--no-sqs"])
    create_queue(server.url, "kill")
    load = Load(server.url, "kill").start()
    try:
        for _ in range(KILLS):
            target = load.sent() + 1000
            deadline = time.monotonic() + 15
            while load.sent() < target and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
            time.sleep(0.3)  # clients see refused connections meanwhile
            server = start_server(tmp_path, ["--database", database_url, "--no-sqs"])
            load.base = server.url
            time.sleep(0.5)
        ledger = load.stop()
        drained = drain(server.url, "kill", ledger)
    finally:
        load.stop()
        server.stop()
    report = reconcile(ledger, drained)
    print(report, dict(ledger.errors))
    assert report.acknowledged_sends >= 1000
    report.check()
