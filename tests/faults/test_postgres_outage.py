"""PostgreSQL failing under a running `conveyor serve`: its connections killed with
`pg_terminate_backend` (only this test's database's), and a throwaway cluster of the
test's own crashed (`pg_ctl stop -m immediate`) and started again. The server reconnects
by itself and goes on; nothing acknowledged is lost or comes back.

The shared server on port 5432 is never stopped: the restart uses a cluster this test
starts on a free loopback port, with `synchronous_commit=on` so that a crash keeps every
acknowledged commit (the session's test cluster turns it off for speed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.faults.load import Load, create_queue, drain, reconcile
from tests.http.server import ServerProcess, start_server
from tests.support.postgres import TempCluster, find_bindir, in_ci, with_database


def wait_for_sends(load: Load, more: int, seconds: float) -> bool:
    """True once `more` further sends were acknowledged within `seconds`."""
    target = load.sent() + more
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if load.sent() >= target:
            return True
        time.sleep(0.05)
    return False


def terminate_backends(admin_url: str, database: str) -> int:
    """Kill every connection to `database` (and only to it); how many there were."""
    with psycopg.connect(admin_url, autocommit=True) as db:
        rows = db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
    return len(rows)


@pytest.mark.postgres
@pytest.mark.timeout(90)
def test_terminated_connections_are_replaced(postgres_url: str, tmp_path: Path) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    server = start_server(tmp_path, ["--database", postgres_url, "--no-sqs"])
    create_queue(server.url, "term")
    load = Load(server.url, "term").start()
    killed = []
    try:
        for _ in range(3):
            assert wait_for_sends(load, 500, 15), dict(load.ledger.errors)
            killed.append(terminate_backends(postgres_url, database))
        assert wait_for_sends(load, 500, 15), f"no recovery: {dict(load.ledger.errors)}"
        ledger = load.stop()
        drained = drain(server.url, "term", ledger)
    finally:
        load.stop()
        server.stop()
    report = reconcile(ledger, drained)
    print("pg_terminate_backend", killed, report, dict(ledger.errors))
    assert all(n >= 1 for n in killed)
    report.check()


class CrashableCluster(TempCluster):
    """A throwaway cluster whose commits survive a crash of the server process."""

    options = ("-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=on "
               "-c max_connections=50")

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
        self.resume()

    def resume(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.root} {self.options}", "start")

    def crash(self) -> None:
        """Stop at once, as a crash would (recovery replays the WAL on the next start)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                  "-w", "stop")


@pytest.fixture
def cluster() -> Iterator[CrashableCluster]:
    bindir = find_bindir()
    if bindir is None:
        if in_ci():
            pytest.fail("PostgreSQL binaries are required on CI", pytrace=False)
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl)")
    made = CrashableCluster(bindir)
    try:
        made.start()
        yield made
    finally:
        made.stop()


@pytest.mark.postgres
@pytest.mark.timeout(110)
def test_database_crash_and_restart(cluster: CrashableCluster, tmp_path: Path) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as db:
        db.execute("CREATE DATABASE outage")
    url = with_database(cluster.url, "outage")
    server: ServerProcess = start_server(tmp_path, ["--database", url, "--no-sqs"])
    create_queue(server.url, "outage")
    load = Load(server.url, "outage").start()
    try:
        assert wait_for_sends(load, 800, 15), dict(load.ledger.errors)
        cluster.crash()
        time.sleep(1.0)  # the load meets a dead database meanwhile: 503s, not hangs
        during = dict(load.ledger.errors)
        cluster.resume()
        assert wait_for_sends(load, 800, 20), f"no recovery: {dict(load.ledger.errors)}"
        ledger = load.stop()
        drained = drain(server.url, "outage", ledger)
        alive = server.process.poll() is None
    finally:
        load.stop()
        server.stop()
    report = reconcile(ledger, drained)
    print("database crash", report, dict(ledger.errors))
    assert alive, server.logs()
    assert any(key.startswith("send 5") for key in during), during
    report.check()
