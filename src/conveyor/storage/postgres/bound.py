"""The application's own connection, for sends inside its transaction (transactional enqueue).

`bind(connection)` turns what an application holds into an `Executor`: the few calls the
PostgreSQL storage makes (`fetch`, `fetchrow`, `execute`, `transaction`). Accepted:

- an `asyncpg.Connection` (with a savepoint of our own inside the caller's transaction);
- a psycopg 3 `AsyncConnection` or `Connection` (statements run through a raw cursor, which
  takes the same `$1` placeholders; a sync connection's calls run in a thread);
- a SQLAlchemy connection or DB-API adapter around one of these (its `driver_connection`).

Statements run in the caller's transaction: the messages exist only if it commits. A nested
`transaction()` is a savepoint, so a failed send leaves the caller's transaction usable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import asyncpg

from conveyor.errors import InvalidInput


class Statements(Protocol):
    """The statements the PostgreSQL storage runs (on a pool or one connection)."""

    async def fetch(self, sql: str, *args: Any) -> Sequence[Any]:
        """Rows of a statement (indexable by position)."""

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        """The first row, or None."""

    async def execute(self, sql: str, *args: Any) -> str:
        """Run a statement; its command tag (`INSERT 0 5`)."""


class Executor(Statements, Protocol):
    """Statements on one connection, which can also open a transaction."""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A transaction, or a savepoint inside the caller's."""


def bind(connection: object) -> Executor:
    """An Executor on the application's connection, or InvalidInput naming what it got."""
    driver = getattr(connection, "driver_connection", None)
    if driver is not None:  # SQLAlchemy: AdaptedConnection, PoolProxiedConnection
        connection = driver
    if isinstance(connection, asyncpg.Connection):
        return AsyncpgBound(connection)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - only without psycopg installed
        psycopg = None  # type: ignore[assignment]
    if psycopg is not None:
        if isinstance(connection, psycopg.AsyncConnection):
            return PsycopgAsync(connection)
        if isinstance(connection, psycopg.Connection):
            return PsycopgSync(connection)
    raise InvalidInput(
        f"connection= takes an asyncpg or psycopg 3 connection to the broker's PostgreSQL "
        f"database, not {type(connection).__name__}.", field="connection")


def is_sync(connection: object) -> bool:
    """True for a connection whose calls block (psycopg's `Connection`)."""
    return isinstance(bind(connection), PsycopgSync)


class AsyncpgBound:
    """An asyncpg connection; inside the caller's transaction, a savepoint of our own (asyncpg
    refuses `transaction()` when the caller began with a plain `BEGIN`)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """Rows as asyncpg Records."""
        return list(await self._conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        """The first row, or None."""
        return await self._conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        """The command tag."""
        return str(await self._conn.execute(sql, *args))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A savepoint inside an open transaction, else a transaction."""
        if not self._conn.is_in_transaction():
            async with self._conn.transaction():
                yield
            return
        await self._conn.execute("SAVEPOINT conveyor_send")
        try:
            yield
        except BaseException:
            if not self._conn.is_closed():
                await self._conn.execute("ROLLBACK TO SAVEPOINT conveyor_send")
            raise
        await self._conn.execute("RELEASE SAVEPOINT conveyor_send")


class _FirstRow:
    """`fetchrow` as the first row of `fetch` (psycopg has no single-row call of its own)."""

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """Rows as tuples."""
        raise NotImplementedError

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        """The first row, or None."""
        found = await self.fetch(sql, *args)
        return found[0] if found else None


class PsycopgAsync(_FirstRow):
    """A psycopg `AsyncConnection`, through raw cursors (`$1` placeholders)."""

    def __init__(self, connection: Any) -> None:
        self._conn = connection

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """Rows as tuples."""
        import psycopg

        async with psycopg.AsyncRawCursor(self._conn) as cur:
            await cur.execute(sql, args)
            return await cur.fetchall() if cur.description is not None else []

    async def execute(self, sql: str, *args: Any) -> str:
        """The command tag."""
        import psycopg

        async with psycopg.AsyncRawCursor(self._conn) as cur:
            await cur.execute(sql, args)
            return cur.statusmessage or ""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """psycopg's transaction block (a savepoint inside an open transaction)."""
        return self._conn.transaction()  # type: ignore[no-any-return]


class PsycopgSync(_FirstRow):
    """A psycopg `Connection`: each call in a thread, so the event loop never blocks."""

    def __init__(self, connection: Any) -> None:
        self._conn = connection

    def _fetch(self, sql: str, args: Sequence[Any]) -> tuple[list[Any], str]:
        import psycopg

        with psycopg.RawCursor(self._conn) as cur:
            cur.execute(sql, args)
            rows = cur.fetchall() if cur.description is not None else []
            return rows, cur.statusmessage or ""

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """Rows as tuples."""
        return (await asyncio.to_thread(self._fetch, sql, args))[0]

    async def execute(self, sql: str, *args: Any) -> str:
        """The command tag."""
        return (await asyncio.to_thread(self._fetch, sql, args))[1]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """psycopg's transaction block, entered and left in a thread."""
        block = self._conn.transaction()
        await asyncio.to_thread(block.__enter__)
        try:
            yield
        except BaseException as exc:
            await asyncio.to_thread(block.__exit__, type(exc), exc, exc.__traceback__)
            raise
        await asyncio.to_thread(block.__exit__, None, None, None)
