"""Keeping the SQLite file bounded, and saying how big it is.

SQLite has no dead rows: a delete frees its pages into the file's free list and later
writes reuse them, so a churning queue stays the size of its peak. What needs care:

- **The WAL during a long read.** A reader holding an old snapshot stops checkpoints from
  restarting the WAL, which then grows with every write. `journal_size_limit` makes SQLite
  cut the file back once a checkpoint completes after the reader has gone.
- **Space after a purge.** When a purge (or a deleted queue) leaves most of the file free,
  `give_back` rewrites it (`VACUUM`, which copies only the pages in use, so it is quick
  exactly then) and the file shrinks at the next checkpoint. Incremental auto-vacuum would
  avoid the rewrite, but on a full disk it made a COMMIT report SQLITE_FULL for a batch it
  had in fact written (tests/faults/test_sqlite_faults.py), so conveyor does not use it.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from conveyor.models import TableHealth

log = logging.getLogger("conveyor.storage.sqlite")
# Bytes the WAL file keeps after a checkpoint: twice its steady size (the auto-checkpoint
# restarts it at 1,000 pages of 4 KiB). With 16 MiB, a soak left the WAL at four times its
# size before a long reader once the reader had gone (benchmarks/soak.py on SQLite).
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024
KEEP_FREE = 4 * 1024 * 1024  # free bytes kept for the next writes rather than returned
MOSTLY_FREE = 0.5  # rewrite only when at least this share of the file is free


def prepare(db: sqlite3.Connection) -> None:
    """Connection settings (no schema change)."""
    db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")


def give_back(db: sqlite3.Connection) -> bool:
    """Rewrite the file when most of it is free (after a purge), so the space goes back to
    the file system; best effort (a busy or full disk leaves the pages for reuse). True
    when rewritten."""
    page, pages, free = (int(db.execute(f"PRAGMA {p}").fetchone()[0])
                         for p in ("page_size", "page_count", "freelist_count"))
    if free * page <= KEEP_FREE or free < MOSTLY_FREE * pages:
        return False
    try:
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # shrink now if no reader
    except sqlite3.Error as exc:
        log.info("sqlite: VACUUM after a purge skipped: %s", exc)
        return False
    return True


def table_health(db: sqlite3.Connection, path: str) -> list[TableHealth]:
    """The file (with the bytes of its free pages) and its WAL."""
    page, free = (int(db.execute(f"PRAGMA {p}").fetchone()[0])
                  for p in ("page_size", "freelist_count"))
    main, wal = Path(path), Path(path + "-wal")
    return [TableHealth("database", None, 0, _size(main), free * page),
            TableHealth("wal", None, 0, _size(wal))]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
