"""A PostgreSQL server for tests, and a fresh database for each test.

Where the server comes from, in order:

1. `CONVEYOR_TEST_POSTGRES_URL`, if set (it must answer: a wrong URL is an error, not a skip);
2. the usual local server, `postgresql://postgres@127.0.0.1:5432/postgres`;
3. a throwaway cluster made with the installed binaries (`initdb`, `pg_ctl`) in a temporary
   directory, on a free port, stopped and removed when the session ends (initdb refuses
   root, so as root it runs as the `postgres` user).

Each test gets its own database, cloned from a template made once per session
(`CREATE DATABASE ... TEMPLATE`, ~35 ms) and set to `synchronous_commit = off`; the
conftest migrates the template, so a test's storage opens on the current schema without
migrating (the migrations themselves run from empty once a session, on the template).
Databases are named `conveyor_test_<pid>_...`; nothing else on a shared server is touched.
Dropping a database costs a checkpoint (~150 ms), so drops happen on a background thread
while the next test runs.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ENV_URL = "CONVEYOR_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFIX = "conveyor_test_"
# Leftovers of crashed sessions are dropped when their process is gone and they are this old.
STALE_AFTER_SECONDS = 6 * 3600
DROP_WAIT_SECONDS = 45  # at the end of a session; pytest-timeout allows its teardown 120 s


def in_ci() -> bool:
    """True on CI, where a missing PostgreSQL is a failure rather than a skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def with_database(url: str, database: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def check_server(url: str, timeout: float = 3.0) -> str | None:
    """None when a server answers at `url`, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True) as db:
            db.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{_redact(url)}: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}"
    return None


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# --- a throwaway cluster ------------------------------------------------------------------


def find_bindir() -> Path | None:
    """A directory holding `initdb`, `pg_ctl` and `postgres`, newest version first."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        candidates.append(Path(out))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                  reverse=True)
    candidates += [Path(p) for p in versions]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempCluster:
    """A PostgreSQL cluster in a temporary directory, for one test session."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._user: str | None = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    entry = pwd.getpwnam(name)
                    os.chown(self.root, entry.pw_uid, entry.pw_gid)
                    self._user = name
                    break
            if self._user is None:
                raise RuntimeError("running as root and no 'postgres' or 'nobody' user exists")

    def _run(self, *args: str, timeout: float = 120) -> None:
        uid = gid = None
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            uid, gid = entry.pw_uid, entry.pw_gid
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, cwd=self.root,
            env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
            user=uid, group=gid, extra_groups=[] if uid is not None else None)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}")

    def start(self) -> None:
        """initdb (trust auth, no fsync) and start on 127.0.0.1 and a socket in the temp dir."""
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                      str(self.root / "server.log"), "-w", "-t", "60", "-o", options, "start")
        except RuntimeError as exc:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{exc}\n{tail}") from None

    def stop(self) -> None:
        """Stop the server at once and remove its files."""
        with contextlib.suppress(Exception):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


# --- databases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TestDatabase:
    """One test's database."""

    name: str
    url: str


class PostgresServer:
    """A server on which this session creates (and drops) its own databases."""

    def __init__(self, admin_url: str, origin: str, cluster: TempCluster | None = None) -> None:
        self.admin_url = admin_url
        self.origin = origin  # how it was found, for the session header
        self.cluster = cluster
        self._tag = f"{os.getpid()}_{secrets.token_hex(3)}"
        self.template = f"{PREFIX}{self._tag}_tpl"
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._admin = psycopg.connect(admin_url, autocommit=True)
        self._drops: queue.Queue[str | None] = queue.Queue()
        self._dropper = threading.Thread(target=self._drop_forever, name="pg-test-dropper",
                                         daemon=True)
        self._drop_errors: list[str] = []

    def open(self, prepare: Callable[[str], None] | None = None) -> None:
        """Clear old leftovers and make this session's template.

        `prepare(url)` may fill the template once (the conftest applies the storage's
        migrations there, so that each test's clone opens without migrating: ~130 ms a
        test saved).
        """
        self._drop_stale()
        self._execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
            sql.Identifier(self.template)))
        if prepare is not None:
            try:
                prepare(with_database(self.admin_url, self.template))
            except BaseException:
                self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.template)))
                raise
        # Nobody may connect to it any more: CREATE DATABASE ... TEMPLATE needs it idle.
        self._execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
            sql.Identifier(self.template)))
        self._execute(sql.SQL(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}").format(
            sql.Literal(self.template)))
        self._dropper.start()

    def _execute(self, statement: sql.Composable) -> None:
        with self._lock:
            self._admin.execute(statement)

    def create_database(self) -> TestDatabase:
        """A new empty database (the storage migrates it on open)."""
        name = f"{PREFIX}{self._tag}_{next(self._counter)}"
        self._execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(self.template)))
        # Commits need not wait for the WAL flush (~7 ms each on a busy disk, ~0.6 ms
        # without): a test kills conveyor's processes, never this server, and what one
        # session commits is visible to every other at once all the same. The throwaway
        # cluster runs so throughout; tests/faults/test_postgres_outage.py, which crashes
        # its server, has one of its own with synchronous_commit=on.
        self._execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(
            sql.Identifier(name)))
        return TestDatabase(name, with_database(self.admin_url, name))

    def drop_database(self, name: str) -> None:
        """Drop a database of this session's, in the background."""
        assert name.startswith(PREFIX + self._tag)
        self._drops.put(name)

    def _drop_forever(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as db:
            while (name := self._drops.get()) is not None:
                try:
                    db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(name)))
                except psycopg.Error as exc:
                    self._drop_errors.append(f"{name}: {exc}")

    def _drop_stale(self) -> None:
        """Drop `conveyor_test_<pid>_*` databases of dead local sessions, hours old."""
        if urlsplit(self.admin_url).hostname not in (None, "", "127.0.0.1", "localhost", "::1"):
            return
        with self._lock:
            rows = self._admin.execute(
                "SELECT datname, oid FROM pg_database WHERE datname LIKE %s",
                (PREFIX.replace("_", r"\_") + "%",)).fetchall()
        for name, oid in rows:
            pid = name[len(PREFIX):].split("_", 1)[0]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            try:
                with self._lock:
                    row = self._admin.execute(
                        "SELECT extract(epoch FROM now() - (pg_stat_file(%s)).modification)",
                        (f"base/{oid}/PG_VERSION",)).fetchone()
            except psycopg.Error:
                continue  # not a superuser: leave it
            if row is None or float(row[0]) < STALE_AFTER_SECONDS:
                continue
            with contextlib.suppress(psycopg.Error):
                self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))

    def close(self) -> list[str]:
        """Finish the drops, drop the template, stop a throwaway cluster. Returns errors."""
        # Each DROP DATABASE waits for a checkpoint, which takes minutes on a disk busy with
        # other work (seen: 3 min, past pytest's 120 s timeout for this teardown). What is
        # not dropped in time is left for a later session's `_drop_stale`.
        if self._dropper.is_alive():
            self._drops.put(self.template)
            self._drops.put(None)
            self._dropper.join(timeout=DROP_WAIT_SECONDS)
            if self._dropper.is_alive():
                print(f"postgres: drops still waiting for a checkpoint after "
                      f"{DROP_WAIT_SECONDS} s; left for a later session", file=sys.stderr)
        else:
            with contextlib.suppress(psycopg.Error):
                self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.template)))
        self._admin.close()
        if self.cluster is not None:
            self.cluster.stop()
        return self._drop_errors


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def connect_server(prepare: Callable[[str], None] | None = None,
                   ) -> tuple[PostgresServer | None, str]:
    """Find or start a server: (server, how it was found) or (None, why there is none).

    `prepare` fills the session's template database (see `PostgresServer.open`)."""
    explicit = os.environ.get(ENV_URL)
    if explicit:
        problem = check_server(explicit)
        if problem is not None:
            return None, f"{ENV_URL} is set but the server does not answer: {problem}"
        server = PostgresServer(explicit, f"{ENV_URL} ({_redact(explicit)})")
        server.open(prepare)
        return server, server.origin
    problem = check_server(DEFAULT_URL)
    if problem is None:
        server = PostgresServer(DEFAULT_URL, f"local server ({DEFAULT_URL})")
        server.open(prepare)
        return server, server.origin
    bindir = find_bindir()
    if bindir is None:
        return None, (f"no server at {DEFAULT_URL} ({problem}), no {ENV_URL}, and no "
                      "initdb/pg_ctl to start one (install postgresql)")
    cluster = TempCluster(bindir)
    started = time.monotonic()
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        cluster.stop()
        return None, f"no server at {DEFAULT_URL}, and starting one from {bindir} failed: {exc}"
    server = PostgresServer(cluster.url, f"throwaway cluster from {bindir} on port "
                            f"{cluster.port} (started in {time.monotonic() - started:.1f} s)",
                            cluster)
    server.open(prepare)
    return server, server.origin
