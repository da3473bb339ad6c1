"""Open what a URL names: the in-process broker on a database, or a client of a server.

The one factory outside `storage` that turns a URL into a storage driver: `worker`,
`notify`, `http` and `demo` open brokers and sources through it and never import a driver
themselves (the import-linter contracts in pyproject.toml hold them to that).
"""

from __future__ import annotations

from typing import Any

from conveyor.broker.broker import Broker
from conveyor.client.source import Source
from conveyor.clock import Clock

__all__ = ["blocks", "is_postgres_url", "is_server_url", "open_broker", "open_source",
           "sqlite_write_lock"]


def is_server_url(url: str) -> bool:
    """True for `http://` and `https://` URLs (a conveyor server)."""
    return url.lower().startswith(("http://", "https://"))


def is_postgres_url(url: str | None) -> bool:
    """Whether `url` names a PostgreSQL database (`storage.factory` decides, as it opens)."""
    from conveyor.storage.factory import is_postgres_url as names_postgres

    return names_postgres(url)


def open_broker(url: str | None, **options: Any) -> Broker:
    """A Broker, not started, on `postgresql://...`, `sqlite:///...` or a bare path (None:
    the embedded SQLite file); `options` are the Broker's keyword arguments."""
    from conveyor.storage.factory import storage_from_url

    return Broker(storage_from_url(url), **options)


def sqlite_write_lock() -> dict[str, float]:
    """This process's SQLite write transactions so far: `transactions`, and the seconds
    `waited` for the write lock and `held` it (all 0 when it opened no SQLite file)."""
    from dataclasses import asdict

    from conveyor.storage.sqlite.sqlite_writer import WRITE_LOCK

    return {k: float(v) for k, v in asdict(WRITE_LOCK).items()}


def open_source(url: str | None, *, clock: Clock | None = None) -> Source:
    """A Source, not started: a database URL (or None) is the in-process broker on it;
    `http(s)://...` is an `AsyncClient` on that server."""
    if url is not None and is_server_url(url):
        from conveyor.client.async_client import AsyncClient
        from conveyor.config import client_from_env

        # A server that requires keys gets the one in CONVEYOR_API_KEY, read at open time.
        return AsyncClient(url, api_key=client_from_env().api_key)
    return open_broker(url, clock=clock)


def blocks(connection: object) -> bool:
    """True for an application's database connection whose calls block (psycopg's
    `Connection`); InvalidInput for one the broker cannot write through."""
    from conveyor.storage.postgres.bound import is_sync

    return is_sync(connection)
