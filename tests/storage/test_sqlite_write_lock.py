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
