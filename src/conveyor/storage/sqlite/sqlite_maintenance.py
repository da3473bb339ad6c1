"""Keeping the SQLite file bounded, and saying how big it is.

SQLite has no dead rows: a delete frees its pages into the file's free list and later
writes reuse them, so a churning queue stays the size of its peak. What needs care:

- **The WAL during a long read.** A reader holding an old snapshot stops checkpoints from
  restarting the WAL, which then grows with every write. `journal_size_limit` makes SQLite
  cut the file back once a checkpoint completes after the reader has gone.
- **Space after a purge.** New files are made with `auto_vacuum = INCREMENTAL`, and a
  purge (or a queue deleted) gives its free pages back to the file system in bounded steps
  (`incremental_vacuum`). A file made before this keeps its free pages for reuse; `VACUUM`
  (offline) converts it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conveyor.models import TableHealth

JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the WAL file keeps after a checkpoint
STEP_PAGES = 8192  # pages returned per incremental_vacuum step (32 MiB at 4 KiB pages)
KEEP_FREE = 4 * 1024 * 1024  # free bytes kept for the next writes rather than returned
_INCREMENTAL = 2  # PRAGMA auto_vacuum value


def prepare(db: sqlite3.Connection) -> None:
    """Connection settings; on a file with no tables yet, incremental auto-vacuum."""
    if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
    db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")


def give_back(db: sqlite3.Connection) -> int:
    """Return the free pages beyond `KEEP_FREE` to the file system, a step at a time (each
    a short write transaction); returns the pages given back."""
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] != _INCREMENTAL:
        return 0
    page = int(db.execute("PRAGMA page_size").fetchone()[0])
    keep = KEEP_FREE // page
    returned = 0
    while (free := int(db.execute("PRAGMA freelist_count").fetchone()[0])) > keep:
        step = min(STEP_PAGES, free - keep)
        db.execute(f"PRAGMA incremental_vacuum({step})").fetchall()
        returned += step
    if returned:  # the file shrinks when the WAL is copied back: now, if no one reads
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return returned


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
