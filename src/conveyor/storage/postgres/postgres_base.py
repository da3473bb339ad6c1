"""The plumbing every part of the PostgreSQL storage shares: the pool, migrations, and
the one place driver errors become conveyor errors.

The storage's parts (queues and messages, jobs, the delivery ledger) are classes over
`PostgresBase`, combined in `postgres_storage.PostgresStorage`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from conveyor.errors import StorageError, StorageUnavailable
from conveyor.storage.postgres.bound import Executor, Statements, bind
from conveyor.storage.sql import load_migrations

Connection = asyncpg.Connection | PoolConnectionProxy
log = logging.getLogger("conveyor.storage.postgres")
MIGRATIONS = load_migrations("conveyor.storage.postgres")
_MIGRATION_LOCK = 0x636F6E76  # "conv": one node migrates at a time
_OUR_PARAMS = ("pool_size", "statement_cache_size")


def split_dsn(url: str) -> tuple[str, dict[str, str]]:
    """Separate our own URL options (`pool_size`, `statement_cache_size`) from libpq's."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query):
        (ours.__setitem__(key, value) if key in _OUR_PARAMS else theirs.append((key, value)))
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(theirs), "")), ours


_NOT_NOW = frozenset({
    "53300",  # too_many_connections (also a role's or database's CONNECTION LIMIT)
    "57P01",  # admin_shutdown (pg_terminate_backend, a fast shutdown)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
})
"""SQLSTATEs that say the database cannot serve now, not that the request is wrong; with
class 08 (connection exceptions) they are `StorageUnavailable` (503, retried by workers,
waited out by `conveyor serve` at start), not `StorageError`."""

LOST_MID_OPERATION = ("PostgreSQL is unavailable: the connection was lost in the middle of "
                      "an operation.")
"""What a client is told for a connection broken under a statement: asyncpg's own words
for it ("cannot switch to state 12; another operation (2) is in progress") are its
internals, kept for the server's DEBUG log."""


def unavailable(exc: BaseException) -> bool:
    """True for a driver error that says the database cannot answer now."""
    if isinstance(exc, (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                        asyncpg.PostgresConnectionError)):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, asyncpg.PostgresError) and isinstance(state, str) and (
        state.startswith("08") or state in _NOT_NOW)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """The one place driver errors become conveyor errors."""
    try:
        yield
    except (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError,
            asyncpg.PostgresError) as exc:
        if not unavailable(exc):
            raise StorageError(f"PostgreSQL: {exc}") from exc
        if isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError)):
            # A pooled connection left mid-operation when its backend was terminated.
            log.debug("postgres: connection lost mid-operation", exc_info=exc)
            raise StorageUnavailable(LOST_MID_OPERATION) from exc
        raise StorageUnavailable(f"PostgreSQL is unavailable: {exc}") from exc


class PostgresBase:
    """A connection pool on one PostgreSQL database, with its schema migrated."""

    def __init__(self, url: str, *, pool_size: int | None = None,
                 statement_cache_size: int | None = None) -> None:
        self.dsn, options = split_dsn(url)
        self._pool_size = pool_size or int(options.get("pool_size", 10))
        self._cache_size = (statement_cache_size if statement_cache_size is not None
                            else int(options.get("statement_cache_size", 100)))
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (after `open`)."""
        if self._pool is None:
            raise StorageUnavailable("The PostgreSQL storage is not open.")
        return self._pool

    # The application's connection when this copy was made by `bound`: every statement runs
    # there, inside the application's transaction, instead of on the pool.
    _bound: Executor | None = None

    def bound(self, connection: object) -> Self:
        """This storage with its statements on the application's connection (asyncpg or
        psycopg 3), inside its transaction: what is written exists only if it commits."""
        clone = copy.copy(self)
        clone._bound = bind(connection)
        return clone

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Executor]:
        with translated():
            if self._bound is not None:
                async with self._bound.transaction():  # a savepoint in the caller's
                    yield self._bound
                return
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn

    def _executor(self) -> Statements:
        return self._bound if self._bound is not None else self.pool

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        with translated():
            return list(await self._executor().fetch(sql, *args))

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        with translated():
            return await self._executor().fetchrow(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> int:
        with translated():
            status: str = await self._executor().execute(sql, *args)
        return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0

    # lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        """Create the pool and apply pending migrations (one node at a time)."""
        with translated():
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self._pool_size,
                statement_cache_size=self._cache_size, reset=_reset)
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS conveyor_migrations "
                    "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
                applied = {r[0] for r in await conn.fetch(
                    "SELECT version FROM conveyor_migrations")}
                for version, script in MIGRATIONS:
                    if version not in applied:
                        await conn.execute(script)
                        await conn.execute(
                            "INSERT INTO conveyor_migrations (version) VALUES ($1)", version)
                        log.info("postgres: applied migration %04d", version)

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def now(self) -> int:
        """The database clock."""
        with translated():
            return int(await self.pool.fetchval("SELECT conveyor_now_ms()"))

    async def schema_version(self) -> tuple[int, int]:
        """(applied, known) migration numbers."""
        with translated():
            applied = await self.pool.fetchval("SELECT max(version) FROM conveyor_migrations")
        return int(applied or 0), len(MIGRATIONS)


async def _reset(conn: asyncpg.Connection) -> None:
    """What a connection needs when it goes back to the pool: only ending a transaction a
    failure left open. Our statements leave no session state (they are pooler-safe), so
    asyncpg's default reset (RESET ALL, UNLISTEN *, ...) would only add a round trip to
    every operation."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")
