"""The plumbing every part of the SQLite storage shares: one connection, one thread.

One connection per process, used from one thread; every operation is one transaction
(`BEGIN IMMEDIATE` when it writes) run in that thread, so the event loop never blocks on
the file and each batch costs one hop. Before each COMMIT the path must still name the
file the connection opened (`sqlite_file`): a file deleted or replaced under a running
server refuses every call from then on (503) rather than acknowledge writes nothing keeps.
The storage's parts (queues and messages, jobs, the delivery ledger) are classes over this
base, combined in `sqlite_storage.SqliteStorage`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self, TypeVar

from conveyor.errors import StorageError, StorageUnavailable, Unsupported
from conveyor.storage.sql import load_migrations
from conveyor.storage.sqlite import sqlite_maintenance as maintenance
from conveyor.storage.sqlite.sqlite_file import FileWatch
from conveyor.storage.sqlite.sqlite_writer import WRITE_LOCK

log = logging.getLogger("conveyor.storage.sqlite")
T = TypeVar("T")
MIGRATIONS = load_migrations("conveyor.storage.sqlite")
_SYNCHRONOUS = ("off", "normal", "full", "extra")
# The storage's thread takes Python's GIL back after every statement, while it may hold the
# file's write lock; at the default 5 ms switch interval a busy event loop in the same
# process kept it waiting, and with it every writer of the file. At 1 ms, 300,000
# notifications in the demo: workers held the lock 25% less, wall time 12% less.
SWITCH_INTERVAL = 0.001
_UNAVAILABLE = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR,
                          sqlite3.SQLITE_CANTOPEN})


class SqliteBase:
    """A SQLite file in WAL mode, its connection and the thread that uses it."""

    def __init__(self, path: str | Path, *, synchronous: str = "normal",
                 busy_timeout_ms: int = 30_000) -> None:
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        self.path = str(path)
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite")
        self._db: sqlite3.Connection | None = None
        self._file = FileWatch(self.path)
        # Why writes fail for want of write access (SQLITE_READONLY), kept from the failed
        # write (or the probe at open) until a write changes rows again: `file_problem`.
        self._read_only: str | None = None

    def bound(self, connection: object) -> Self:
        """Not on SQLite: the embedded file has no application transactions to join."""
        raise Unsupported("Transactional enqueue (connection=...) needs the broker on "
                          "PostgreSQL; this one is on SQLite.")

    # plumbing -----------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            raise StorageUnavailable("The SQLite storage is not open.")
        if self._file.gone is not None:  # reads too: they would show a file no one sees
            raise StorageUnavailable(self._file.gone)
        try:
            return fn(self._db)
        except sqlite3.DatabaseError as exc:
            # sqlite_errorcode is the extended code (SQLITE_IOERR_WRITE, ...): its low byte
            # is the primary one.
            code = getattr(exc, "sqlite_errorcode", None)
            primary = code & 0xFF if isinstance(code, int) else None
            if primary in _UNAVAILABLE:
                # The file, not the request: a full disk, a read-only file. 503, and it
                # works again once space or write access returns.
                if primary == sqlite3.SQLITE_READONLY:
                    self._read_only = f"SQLite {self.path}: {exc}"
                raise StorageUnavailable(f"SQLite {self.path}: {exc}") from exc
            raise StorageError(f"SQLite: {exc}") from exc

    @contextlib.contextmanager
    def _write(self, db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        stats = WRITE_LOCK
        asked = time.perf_counter()
        try:
            db.execute("BEGIN IMMEDIATE")
        finally:
            got = time.perf_counter()
            on_cpu = time.thread_time()
            stats.waited += got - asked
        changes = db.total_changes
        try:
            yield db
            # Last thing before COMMIT, holding the write lock: nothing is committed (and
            # acknowledged) into a file deleted or replaced at its path. A delete between
            # this stat and the COMMIT still goes unnoticed until the next transaction; no
            # check can close that window, only make it microseconds wide.
            if (gone := self._file.check()) is not None:
                raise StorageUnavailable(gone)
            db.execute("COMMIT")
            if db.total_changes != changes:
                self._read_only = None  # rows written: write access is back
        except BaseException:
            if db.in_transaction:  # also when COMMIT itself failed (a full disk)
                db.execute("ROLLBACK")
            raise
        finally:
            stats.transactions += 1
            stats.held += time.perf_counter() - got
            stats.on_cpu += time.thread_time() - on_cpu

    @staticmethod
    def _now(now: int | None) -> int:
        return int(time.time() * 1000) if now is None else now

    def _connect(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        maintenance.prepare(db)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {self._synchronous}")
        db.execute("PRAGMA foreign_keys = OFF")
        self._file.record()  # after WAL mode, which opened the -wal file
        self._db = db
        self._migrate(db)
        self._read_only = self._write_refused(db)

    def _migrate(self, db: sqlite3.Connection) -> None:
        with self._write(db):
            db.execute("CREATE TABLE IF NOT EXISTS conveyor_migrations "
                       "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
            applied = {r[0] for r in db.execute("SELECT version FROM conveyor_migrations")}
            for version, script in MIGRATIONS:
                if version in applied:
                    continue
                for statement in _statements(script):
                    db.execute(statement)
                db.execute("INSERT INTO conveyor_migrations VALUES (?, ?)",
                           (version, self._now(None)))
                log.info("sqlite %s: applied migration %04d", self.path, version)

    # lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        """Open the file (creating it) and apply pending migrations; lowers the process's
        GIL switch interval to `SWITCH_INTERVAL` (never raises it)."""
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._connect)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"Cannot open SQLite file {self.path}: {exc}"
                                     f"{_why_not_writable(self.path)}") from exc

    async def close(self) -> None:
        """Close the connection and its thread."""
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=False)

    async def file_problem(self) -> tuple[str, str] | None:
        """Why the file cannot take writes, as (reason code, sentence), or None: deleted or
        replaced at its path (`storage_file_gone`), or no write access
        (`storage_read_only`, until a write succeeds)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                self._file_problem)

    def _file_problem(self) -> tuple[str, str] | None:
        if self._db is None:
            return None  # not open: the schema check says so
        if (gone := self._file.check()) is not None:
            return "storage_file_gone", gone
        if self._read_only is not None:
            # Only after a refused write, so the probe's write lock costs nothing usually.
            self._read_only = self._write_refused(self._db)
        if self._read_only is not None:
            return ("storage_read_only", f"{self._read_only.rstrip('.')}"
                    f"{_why_not_writable(self.path)}.")
        return None

    def _write_refused(self, db: sqlite3.Connection) -> str | None:
        """Why this connection cannot write (SQLITE_READONLY: a file opened without write
        access, query_only), or None: rewrites the header's user_version and rolls back.
        A transaction that changes nothing commits even on a read-only file."""
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                db.execute(f"PRAGMA user_version = {version}")
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_READONLY:
                return f"SQLite {self.path}: {exc}"
            return None  # busy, I/O: not a matter of write access; writes will say
        return None

    async def now(self) -> int:
        """This machine's clock (one machine shares the file, so it is the only clock)."""
        return self._now(None)

    async def schema_version(self) -> tuple[int, int]:
        """(applied, known) migration numbers."""
        def run(db: sqlite3.Connection) -> int:
            return int(db.execute("SELECT max(version) FROM conveyor_migrations").fetchone()[0])
        return await self._run(run), len(MIGRATIONS)


def _why_not_writable(path: str) -> str:
    """A hint when the file or its directory cannot be written (WAL needs both)."""
    folder = Path(path).parent
    for where in (Path(path), folder):
        if where.exists() and not os.access(where, os.W_OK):
            return (f" ({where} is read-only: SQLite in WAL mode writes the file and its "
                    "-wal and -shm files beside it)")
    return ""


def _statements(script: str) -> list[str]:
    """Split a migration into statements (our migrations hold no ';' inside strings; a
    trigger's body holds several, so a piece is kept until SQLite calls it complete)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    out: list[str] = []
    pending = ""
    for piece in "\n".join(lines).split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending.strip().removesuffix(";").strip())
            pending = ""
    if pending.strip(" \n;"):
        out.append(pending.strip().removesuffix(";").strip())
    return out
