"""Fixtures shared by every test folder.

- `postgres_url`: a fresh, empty PostgreSQL database for this test (see tests/support/postgres.py
  for where the server comes from). Without a server the test is skipped on a laptop and
  fails on CI (`CI=true`).
- `sqlite_url`: a fresh SQLite file (WAL) in the test's tmp_path, a copy of one migrated
  once a session (as PostgreSQL's databases are clones of a migrated template).
- `database_url`: parametrized over both, ids `sqlite` and `postgres`.
- `clock`: a `ManualClock`; `broker`: a started `Broker` on `database_url` with that clock and
  no background sweeper; `open_broker`: more brokers on the same database (separate
  connections), closed at the end of the test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock, system_clock
from conveyor.http.app import create_app
from conveyor.storage.factory import storage_from_url
from tests.http.server import ServerProcess, start_server
from tests.support.postgres import PostgresServer, connect_server, in_ci

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


class _PostgresState:
    server: PostgresServer | None = None
    tried = False
    found = False
    reason = ""  # how the server was found, or why there is none
    errors: list[str] = []  # noqa: RUF012


_pg = _PostgresState()


def _migrate(url: str) -> None:
    """Apply the storage's migrations to the template database (in a thread of its own, so
    that no event loop of the tests is in the way)."""

    async def run() -> None:
        storage = storage_from_url(url)
        await storage.open()
        await storage.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (skip here, fail on CI, when there is none)."""
    if not _pg.tried:
        _pg.tried = True
        _pg.server, _pg.reason = connect_server(prepare=_migrate)
        _pg.found = _pg.server is not None
    if _pg.server is None:
        if in_ci():
            pytest.fail(f"PostgreSQL is required on CI: {_pg.reason}", pytrace=False)
        pytest.skip(f"no PostgreSQL: {_pg.reason}")
    yield _pg.server


@pytest.fixture(scope="session", autouse=True)
def _close_postgres() -> Iterator[None]:
    yield
    if _pg.server is not None:
        _pg.errors = _pg.server.close()
        _pg.server = None


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database, dropped after the test."""
    database = postgres_server.create_database()
    try:
        yield database.url
    finally:
        postgres_server.drop_database(database.name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once a session (from empty: the migrations run here), which
    `sqlite_url` copies: a copy costs a millisecond, migrating a new file 40-250 ms of
    commits on a busy disk."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    _migrate(f"sqlite:///{path}")
    # Closed cleanly, the storage left everything in the main file (no -wal to copy).
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh SQLite file on the current schema (WAL mode, as the storage sets it)."""
    shutil.copyfile(sqlite_template, tmp_path / "conveyor.db")
    return f"sqlite:///{tmp_path}/conveyor.db"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """`sqlite` or `postgres`."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend in turn."""
    return str(request.getfixturevalue(f"{backend}_url"))


_CLOCK_STEP_MS = 31 * 24 * 3600 * 1000
_clock_starts = itertools.count()
_CLOCK_BASE = system_clock()


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only on `clock.advance(seconds)`.

    Each test's clock starts a month after the previous one's: message ids are time-ordered
    and never go backwards within a process, so a test that moved its clock days ahead
    must not leave later tests with ids "from the future" (retention works on ids).
    """
    return ManualClock(_CLOCK_BASE + next(_clock_starts) * _CLOCK_STEP_MS)


OpenBroker = Callable[..., Awaitable[Broker]]


@pytest.fixture
async def open_broker(database_url: str, clock: ManualClock) -> AsyncIterator[OpenBroker]:
    """Open another started Broker on the test's database (its own connections)."""
    opened: list[Broker] = []

    async def open_(**kwargs: object) -> Broker:
        options: dict[str, object] = {"clock": clock, "sweep_interval": None}
        options.update(kwargs)
        broker = Broker(storage_from_url(database_url), **options)  # type: ignore[arg-type]
        await broker.start()
        opened.append(broker)
        return broker

    yield open_
    for broker in reversed(opened):
        await broker.close()


@pytest.fixture
async def broker(open_broker: OpenBroker) -> Broker:
    """A started Broker with the test's ManualClock and no background sweeper."""
    return await open_broker()


@pytest.fixture
async def http(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on `create_app(broker)` in this process, on each backend
    (tests/http/conftest.py's own also makes a queue `base`)."""
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown (_close_postgres)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker, hand what it knows of PostgreSQL to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None and _pg.tried:
        output["conveyor_postgres"] = {"found": _pg.found, "reason": _pg.reason,
                                       "errors": list(_pg.errors)}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """In the pytest-xdist controller, gather each worker's PostgreSQL report."""
    report = getattr(node, "workeroutput", {}).get("conveyor_postgres")
    if report is None:
        return
    if not _pg.tried or (report["found"] and not _pg.found):
        _pg.reason = report["reason"]
    _pg.tried = True
    _pg.found = _pg.found or report["found"]
    _pg.errors = [*_pg.errors, *report["errors"]]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which PostgreSQL the tests used, or loudly that they did not run."""
    if not _pg.tried:
        return
    if _pg.found:
        terminalreporter.write_line(f"postgres: {_pg.reason}")
    else:
        terminalreporter.write_sep("!", "PostgreSQL tests did not run", red=True, bold=True)
        terminalreporter.write_line(_pg.reason, yellow=True)
    for error in _pg.errors:
        terminalreporter.write_line(f"postgres cleanup: {error}", red=True)


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A `conveyor serve` process on a fresh SQLite file (no SQS port), stopped after."""
    process = start_server(tmp_path, ["--database", f"sqlite:///{tmp_path}/s.db", "--no-sqs"])
    try:
        yield process
    finally:
        process.stop()
