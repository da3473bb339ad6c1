"""Keeping the SQLite file bounded, and saying how big it is.

SQLite has no dead rows: a delete frees its pages into the file's free list and later
writes reuse them, so a churning queue stays the size of its peak. What needs care:

- **The WAL during a long read.** A reader holding an old snapshot stops checkpoints from
  restarting the WAL, which then grows with every write. `journal_size_limit` makes SQLite
  cut the file back once a checkpoint completes after the reader has gone.
- **Who holds the WAL.** `snapshot_hold` tells a checkpoint that cannot finish (a reader's
  snapshot is older than the WAL's end) and, on Linux, the reader's pid from
  `/proc/locks` (its read lock on the `-shm` file). Nothing here opens that file: closing
  any descriptor of a file drops every POSIX lock the process holds on it, SQLite's own.
- **Space after a purge.** When a purge (or a deleted queue) leaves most of the file free,
  `give_back` rewrites it (`VACUUM`, which copies only the pages in use, so it is quick
  exactly then) and the file shrinks at the next checkpoint. Incremental auto-vacuum would
  avoid the rewrite, but on a full disk it made a COMMIT report SQLITE_FULL for a batch it
  had in fact written (tests/faults/test_sqlite_faults.py), so conveyor does not use it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from conveyor.models import SnapshotHold, TableHealth

log = logging.getLogger("conveyor.storage.sqlite")
# Bytes the WAL file keeps after a checkpoint: twice its steady size (the auto-checkpoint
# restarts it at 1,000 pages of 4 KiB). With 16 MiB, a soak left the WAL at four times its
# size before a long reader once the reader had gone (benchmarks/soak.py on SQLite).
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024
KEEP_FREE = 4 * 1024 * 1024  # free bytes kept for the next writes rather than returned
MOSTLY_FREE = 0.5  # rewrite only when at least this share of the file is free
# SQLite's WAL read locks: bytes 120 + 3 + i of the -shm file, i = 0..4 (wal.c).
_READ_LOCKS = range(123, 128)


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


@dataclass
class WalHold:
    """What this process saw of the WAL being held back: since when (monotonic), by
    which pid."""

    since: float | None = None
    pid: int | None = None


def snapshot_hold(db: sqlite3.Connection, path: str, seen: WalHold) -> SnapshotHold | None:
    """A reader keeping the WAL from being checkpointed, if any: a passive checkpoint (it
    waits for no one) leaves frames behind only for a snapshot older than them."""
    busy, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if not busy and (frames <= 0 or done >= frames):
        seen.since = seen.pid = None
        return None
    now = time.monotonic()
    if busy and seen.since is None:  # another checkpoint ran: no answer this time
        return None
    if seen.since is None:
        seen.since = now
    readers = wal_readers(path)
    if seen.pid not in readers:
        seen.pid = readers[0] if readers else None
    return SnapshotHold("reader", now - seen.since, seen.pid)


def wal_readers(path: str, locks: str = "/proc/locks") -> list[int]:
    """Pids of other processes holding a WAL read lock on the file (Linux; [] elsewhere)."""
    try:
        shm = os.stat(path + "-shm")
        with open(locks, encoding="ascii") as table:
            lines = table.read().splitlines()
    except OSError:
        return []
    inode = f"{os.major(shm.st_dev):02x}:{os.minor(shm.st_dev):02x}:{shm.st_ino}"
    found: list[int] = []
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter, listed under the lock it waits for
            continue
        try:
            kind, pid, where, start = fields[1], int(fields[4]), fields[5], int(fields[6])
        except (IndexError, ValueError):
            continue
        if (kind == "POSIX" and where == inode and start in _READ_LOCKS
                and pid != os.getpid() and pid not in found):
            found.append(pid)
    return found


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
