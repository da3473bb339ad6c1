"""The retention sweeper through a database outage: one warning and one line when it ends,
not a traceback a sweep (it logged `retention sweep failed` with one every interval)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from conveyor.broker import retention
from conveyor.broker.broker import Broker
from conveyor.errors import StorageUnavailable


async def test_an_outage_is_two_lines_and_the_sweeps_go_on(
        broker: Broker, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    enough = asyncio.Event()
    real = retention.sweep

    async def flaky(target: Broker) -> int:
        calls.append(1)
        if len(calls) >= 8:
            enough.set()
        if len(calls) <= 5:
            raise StorageUnavailable("PostgreSQL is unavailable: connection refused")
        return await real(target)

    monkeypatch.setattr(retention, "sweep", flaky)
    caplog.set_level(logging.DEBUG)
    sweeper = asyncio.create_task(retention.sweep_forever(broker, 0.01))
    try:
        await asyncio.wait_for(enough.wait(), 30)
    finally:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
    above_debug = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert [r.levelname for r in above_debug] == ["WARNING", "INFO"], caplog.text
    assert "retention sweep failed" in above_debug[0].getMessage()
    assert "reachable again" in above_debug[1].getMessage()
    assert not any(r.exc_info for r in above_debug)
