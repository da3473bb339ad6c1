"""benchmarks/soak.py's SQLite invariants in seconds: while a long read transaction pins
the WAL, the database file itself stays bounded (freed pages are reused) and only the WAL
grows (SQLite cannot checkpoint past a reader); once the reader ends, the WAL is cut back
to JOURNAL_SIZE_LIMIT at the next restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conveyor.broker.broker import Broker
from conveyor.storage.sqlite.sqlite_maintenance import JOURNAL_SIZE_LIMIT
from conveyor.storage.sqlite.sqlite_storage import SqliteStorage
from tests.support.messages import entry, receive_all

BODY = "z" * 200


async def _churn(broker: Broker, rounds: int) -> None:
    """Send, receive and delete 2,000 messages a round."""
    for _ in range(rounds):
        await broker.send("soak", [entry(BODY) for _ in range(1000)])
        await broker.send("soak", [entry(BODY) for _ in range(1000)])
        got = await receive_all(broker, "soak")
        assert len(got) == 2000
        for start in (0, 1000):
            done = await broker.delete("soak", [m.receipt_handle
                                                for m in got[start:start + 1000]])
            assert all(r.status == "ok" for r in done)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def test_a_pinned_wal_grows_alone_and_is_cut_back_once_the_reader_ends(
        tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    wal = Path(f"{path}-wal")
    broker = Broker(SqliteStorage(str(path)), sweep_interval=None)
    await broker.start()
    try:
        await broker.create_queue("soak")
        await _churn(broker, 3)
        base = _size(path)
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM conveyor_queues").fetchone()
            await _churn(broker, 10)
            pinned = _size(wal)
            # The file reuses the pages the deletes free; the WAL holds every write since
            # the reader began (more than the limit it is cut back to afterwards).
            assert _size(path) <= 1.5 * base + 1_000_000, (base, _size(path))
            assert pinned > JOURNAL_SIZE_LIMIT, pinned
            reader.execute("ROLLBACK")
        finally:
            reader.close()
        await _churn(broker, 4)  # checkpoints complete now, and the WAL restarts
        assert _size(wal) <= JOURNAL_SIZE_LIMIT + 1_000_000, (pinned, _size(wal))
        assert _size(path) <= 1.5 * base + 1_000_000, (base, _size(path))
    finally:
        await broker.close()
