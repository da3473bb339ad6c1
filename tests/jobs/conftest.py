"""Fixtures of the job-system tests (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.storage.factory import storage_from_url


@pytest.fixture
async def sqlite_broker(sqlite_url: str, clock: ManualClock) -> AsyncIterator[Broker]:
    """One started broker on SQLite: enough for checks that fail before any storage."""
    broker = Broker(storage_from_url(sqlite_url), clock=clock, sweep_interval=None)
    await broker.start()
    yield broker
    await broker.close()
