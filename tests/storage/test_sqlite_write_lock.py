"""Each process counts its SQLite write transactions and the time it waited for the
write lock and held it (the demo report prints them)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from conveyor.connect import sqlite_write_lock
from conveyor.storage.sqlite.sqlite_storage import SqliteStorage
from conveyor.storage.sqlite.sqlite_writer import WRITE_LOCK


async def test_a_write_transaction_is_counted_even_when_it_fails(tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "count.db"))
    await storage.open()
    try:
        before = dataclasses.replace(WRITE_LOCK)

        def create(db: sqlite3.Connection) -> None:
            with storage._write(db):
                db.execute("CREATE TABLE t (v TEXT)")

        def fail(db: sqlite3.Connection) -> None:
            with storage._write(db):
                raise ValueError("rolled back")

        await storage._run(create)
        with pytest.raises(ValueError):
            await storage._run(fail)
        assert WRITE_LOCK.transactions - before.transactions == 2
        assert WRITE_LOCK.held > before.held and WRITE_LOCK.waited >= before.waited
        assert sqlite_write_lock()["transactions"] == WRITE_LOCK.transactions
    finally:
        await storage.close()


async def test_the_storage_lowers_the_gil_switch_interval_and_counts_cpu_held(
        tmp_path: Path) -> None:
    import sys

    from conveyor.storage.sqlite.sqlite_base import SWITCH_INTERVAL

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    storage = SqliteStorage(str(tmp_path / "gil.db"))
    try:
        await storage.open()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        sys.setswitchinterval(0.0001)  # never raised
        before = dataclasses.replace(WRITE_LOCK)
        await storage.delivery_statuses(["x"])
        await storage._run(lambda db: db.execute("PRAGMA user_version = 1"))
        assert sys.getswitchinterval() == pytest.approx(0.0001)
        assert 0 <= WRITE_LOCK.on_cpu - before.on_cpu <= WRITE_LOCK.held - before.held + 0.01
    finally:
        sys.setswitchinterval(old)
        await storage.close()
