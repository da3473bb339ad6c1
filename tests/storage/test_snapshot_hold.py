"""`snapshot_hold`: the open snapshot that keeps dead weight from being reclaimed (issue 17's
analytics query), named with its pid and age, on both drivers; /metrics and the dashboard
show it. The holder is another process (PostgreSQL: its own backend; SQLite: a child
process holding a read transaction), as in production."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conveyor.dashboard.views import holder
from conveyor.http.app import create_app
from conveyor.models import SnapshotHold
from conveyor.storage.base import Storage
from conveyor.storage.sqlite.sqlite_maintenance import wal_readers
from tests.conftest import OpenBroker
from tests.storage.conftest import make_queue, send

LOCK_TABLE = Path("/proc/locks").exists()  # Linux: the reader's pid is known

_READER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN")
db.execute("SELECT count(*) FROM conveyor_queues").fetchone()
print("reading", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


@contextmanager
def held(database_url: str) -> Iterator[int]:
    """An open snapshot in another process, for the block; yields its pid (PostgreSQL:
    the backend's)."""
    if database_url.startswith("postgres"):
        import psycopg

        with psycopg.connect(database_url, application_name="analytics") as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            conn.execute("SELECT count(*) FROM conveyor_queues").fetchone()
            yield conn.info.backend_pid
            conn.rollback()
        return
    path = database_url.split("sqlite:///", 1)[1]
    reader = subprocess.Popen([sys.executable, "-c", _READER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "reading\n"
        yield reader.pid
    finally:
        reader.communicate(timeout=10)


async def test_a_long_snapshot_is_named_with_its_pid_and_age(storage: Storage,
                                                             database_url: str,
                                                             t0: int) -> None:
    queue = await make_queue(storage, "q", t0)
    await send(storage, queue, t0, ["before"])
    assert await storage.snapshot_hold() is None
    with held(database_url) as pid:
        await send(storage, queue, t0, ["during"] * 50)  # SQLite: WAL frames after it
        first = await storage.snapshot_hold()
        await asyncio.sleep(1.1)
        later = await storage.snapshot_hold()
    assert first is not None and later is not None
    postgres = storage.dialect == "postgresql"
    assert later.kind == ("transaction" if postgres else "reader")
    assert later.seconds is not None and later.seconds >= 1.0
    if postgres:
        assert later.application == "analytics"
    if postgres or LOCK_TABLE:
        assert later.pid == pid
    await send(storage, queue, t0, ["after"])  # SQLite: a checkpoint can finish now
    assert await storage.snapshot_hold() is None


def test_wal_readers_reads_the_lock_table(tmp_path: Path) -> None:
    import os

    db = tmp_path / "x.db"
    (tmp_path / "x.db-shm").write_bytes(b"\0" * 32768)
    shm = os.stat(str(db) + "-shm")
    inode = f"{os.major(shm.st_dev):02x}:{os.minor(shm.st_dev):02x}:{shm.st_ino}"
    locks = tmp_path / "locks"
    locks.write_text(
        f"1: POSIX  ADVISORY  READ 4242 {inode} 124 124\n"           # a reader: named
        f"1: -> POSIX  ADVISORY  WRITE 5151 {inode} 124 124\n"       # a waiter: not
        f"2: POSIX  ADVISORY  READ 4343 00:01:999 124 124\n"         # another file
        f"3: POSIX  ADVISORY  WRITE 4444 {inode} 120 120\n"          # the write lock
        f"4: FLOCK  ADVISORY  WRITE 4545 {inode} 0 EOF\n"
        f"5: POSIX  ADVISORY  READ {os.getpid()} {inode} 123 123\n"  # this process
        f"6: POSIX  ADVISORY  READ 4646 {inode} 127 127\n"
        "garbage\n")
    assert wal_readers(str(db), str(locks)) == [4242, 4646]
    assert wal_readers(str(tmp_path / "none.db"), str(locks)) == []


def test_the_dashboard_names_the_holder() -> None:
    assert holder(SnapshotHold("transaction", 432.0, 4242, "psql")) == \
        "a transaction (backend pid 4242, psql) open 7m 12s"
    assert holder(SnapshotHold("replication slot", None, None, "standby1")) == \
        "a replication slot (standby1)"
    assert holder(SnapshotHold("reader", 12.5)) == "a reader open 12s"
    assert holder(SnapshotHold("reader", 1.0, 77)) == "a reader (pid 77) open 1s"


async def test_metrics_and_dashboard_show_the_hold(open_broker: OpenBroker,
                                                   database_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("conveyor.dashboard.views.HOLD_SHOWN", 0.5)
    broker = await open_broker(stats_cache_seconds=0)
    app = create_app(broker)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as http:
        await http.post("/v1/queues", json={"name": "q"})
        assert "conveyor_oldest_snapshot_seconds 0.0" in (await http.get("/metrics")).text
        with held(database_url) as pid:
            await http.post("/v1/queues/q/messages", json={"messages": [{"body": "x"}]})
            await broker.snapshot_hold()  # SQLite: seen from now on
            await asyncio.sleep(1.1)
            metrics = (await http.get("/metrics")).text
            page = (await http.get("/")).text
    line = next(x for x in metrics.splitlines()
                if x.startswith("conveyor_oldest_snapshot_seconds "))
    assert float(line.split()[1]) >= 1.0
    assert "held back by" in page
    if database_url.startswith("postgres") or LOCK_TABLE:
        assert f"pid {pid}" in page  # "backend pid" on PostgreSQL
