"""The SQLite storage notices its file deleted or replaced at its path (and then refuses
writes and reads), and says when the file refuses writes until a write succeeds again."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from conveyor.broker.broker import Broker
from conveyor.errors import StorageUnavailable
from conveyor.models import Body, SendEntry
from conveyor.storage.factory import storage_from_url
from conveyor.storage.sqlite.sqlite_file import FileWatch
from conveyor.storage.sqlite.sqlite_storage import SqliteStorage

MSG = [SendEntry(Body("m"))]


async def test_a_deleted_file_refuses_writes_then_reads(sqlite_url: str) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    broker = Broker(storage_from_url(sqlite_url), sweep_interval=None)
    await broker.start()
    storage = broker.storage
    try:
        await broker.create_queue("q")
        await broker.send("q", MSG)
        assert await storage.file_problem() is None  # type: ignore[attr-defined]
        for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
            (path.parent / name).unlink()
        with pytest.raises(StorageUnavailable, match=r"was deleted while .* restart"):
            await broker.send("q", MSG)
        with pytest.raises(StorageUnavailable, match="was deleted"):
            await broker.queue_stats("q")
        code, message = await storage.file_problem()  # type: ignore[attr-defined]
        assert code == "storage_file_gone" and str(path) in message
    finally:
        await broker.close()


async def test_readyz_probe_alone_notices_a_replaced_file(sqlite_url: str,
                                                          tmp_path: Path) -> None:
    """No write needed: the readiness check compares the path's inode itself."""
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        other = tmp_path / "other.db"
        sqlite3.connect(other).close()
        os.replace(other, path)
        problem = await storage.file_problem()
        assert problem is not None and problem[0] == "storage_file_gone"
        assert "replaced by another file" in problem[1]
    finally:
        await storage.close()


async def test_in_memory_is_not_watched() -> None:
    broker = Broker(SqliteStorage(":memory:"), sweep_interval=None)
    await broker.start()
    try:
        await broker.create_queue("q")
        await broker.send("q", MSG)
        assert await broker.storage.file_problem() is None  # type: ignore[attr-defined]
        assert (await broker.queue_stats("q")).visible == 1
    finally:
        await broker.close()


async def test_read_only_until_a_write_succeeds(sqlite_url: str) -> None:
    broker = Broker(storage_from_url(sqlite_url), sweep_interval=None)
    await broker.start()
    storage = broker.storage
    try:
        await broker.create_queue("q")
        storage._call(lambda db: db.execute("PRAGMA query_only = ON"))  # type: ignore[attr-defined]
        with pytest.raises(StorageUnavailable, match="readonly"):
            await broker.send("q", MSG)
        for _ in range(2):  # the probe that finds it still read-only keeps saying so
            code, message = await storage.file_problem()  # type: ignore[attr-defined]
            assert code == "storage_read_only" and "readonly" in message, message
        storage._call(lambda db: db.execute("PRAGMA query_only = OFF"))  # type: ignore[attr-defined]
        assert await storage.file_problem() is None  # type: ignore[attr-defined]
        await broker.send("q", MSG)
        assert (await broker.queue_stats("q")).visible == 1
    finally:
        await broker.close()


async def test_only_a_write_that_changes_rows_clears_read_only(sqlite_url: str) -> None:
    """A transaction that changes nothing commits even on a read-only file: no proof."""
    storage = SqliteStorage(sqlite_url.removeprefix("sqlite:///"))
    await storage.open()
    try:
        def write(sql: str) -> None:
            def run(db: sqlite3.Connection) -> None:
                with storage._write(db):
                    db.execute(sql)
            storage._call(run)

        write("CREATE TEMP TABLE t (x)")
        storage._read_only = "was refused"
        write("SELECT 1")
        assert storage._read_only == "was refused"
        write("INSERT INTO t VALUES (1)")
        assert storage._read_only is None
    finally:
        await storage.close()


def test_a_watch_ignores_what_stat_cannot_tell(tmp_path: Path) -> None:
    """Permission trouble on the way is not a different file; a path through a file is."""
    folder = tmp_path / "d"
    folder.mkdir()
    db = folder / "x.db"
    db.write_bytes(b"")
    watch = FileWatch(str(db))
    watch.record()
    assert watch.check() is None
    if os.geteuid() != 0:  # root passes any permission check
        folder.chmod(0)
        try:
            assert watch.check() is None
        finally:
            folder.chmod(0o755)
    db.unlink()
    folder.rmdir()
    folder.write_bytes(b"")  # d is a file now: ENOTDIR
    gone = watch.check()
    assert gone is not None and "deleted" in gone
    assert watch.check() == gone  # stays, even were the path to come back


def test_the_check_is_cheap_next_to_a_transaction(tmp_path: Path) -> None:
    """The stat pair per COMMIT stays a small share of the smallest write transaction."""
    path = tmp_path / "cost.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("CREATE TABLE t (x)")
        watch = FileWatch(str(path))
        watch.record()
        n = 2000
        started = time.perf_counter()
        for _ in range(n):
            watch.check()
        check = (time.perf_counter() - started) / n
        started = time.perf_counter()
        for _ in range(n):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (1)")
            db.execute("COMMIT")
        transaction = (time.perf_counter() - started) / n
    finally:
        db.close()
    assert check < 50e-6, check  # measured 1.8 µs; generous for a loaded CI machine
    assert check < transaction, (check, transaction)
