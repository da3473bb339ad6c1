"""Wait for a state instead of sleeping a fixed time and hoping it was reached."""

from __future__ import annotations

import asyncio
import time

from conveyor.broker.broker import Broker


async def until_waiting(broker: Broker, count: int, timeout: float = 5.0) -> None:
    """Return once `count` receives of `broker` wait in a long poll (AssertionError after
    `timeout`): a send after this is the one that must wake them."""
    deadline = time.monotonic() + timeout
    while broker.waiting_receives != count:
        assert time.monotonic() < deadline, (broker.waiting_receives, count)
        await asyncio.sleep(0.002)
