"""Open the source a URL names: the in-process broker for a database, a client for a server."""

from __future__ import annotations

from conveyor.client.source import Source
from conveyor.clock import Clock


def is_server_url(url: str) -> bool:
    """True for `http://` and `https://` URLs (a conveyor server)."""
    return url.lower().startswith(("http://", "https://"))


def open_source(url: str | None, *, clock: Clock | None = None) -> Source:
    """A Source, not started: `postgresql://...`, `sqlite:///...` or a bare path is the
    in-process broker on that database (None: the embedded SQLite file); `http(s)://...` is
    an `AsyncClient` on that server."""
    if url is not None and is_server_url(url):
        from conveyor.client.async_client import AsyncClient
        from conveyor.config import client_from_env

        # A server that requires keys gets the one in CONVEYOR_API_KEY, read at open time.
        return AsyncClient(url, api_key=client_from_env().api_key)
    from conveyor.broker.broker import Broker
    from conveyor.storage.factory import default_database_url, storage_from_url

    return Broker(storage_from_url(url or default_database_url()), clock=clock)
