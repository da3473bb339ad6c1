"""Fixtures of the broker tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from conveyor.broker.broker import Broker
from conveyor.storage.postgres.postgres_storage import PostgresStorage

Upkept = tuple[PostgresStorage, Broker]
"""The `pg` fixture: a PostgreSQL storage and its started broker."""


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Upkept]:
    """A broker on PostgreSQL whose table upkeep runs only when a test runs it (a
    `Maintenance` of its own on the storage's pool)."""
    storage = PostgresStorage(postgres_url, maintenance=False)
    broker = Broker(storage, sweep_interval=None)
    await broker.start()
    try:
        yield storage, broker
    finally:
        await broker.close()
