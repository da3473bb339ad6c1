"""Wait for a state instead of sleeping a fixed time and hoping it was reached."""

from __future__ import annotations

import asyncio
import re
import time

import httpx

from conveyor.broker.broker import Broker


async def until_waiting(broker: Broker, count: int, timeout: float = 5.0) -> None:
    """Return once `count` receives of `broker` wait in a long poll (AssertionError after
    `timeout`): a send after this is the one that must wake them."""
    deadline = time.monotonic() + timeout
    while broker.waiting_receives != count:
        assert time.monotonic() < deadline, (broker.waiting_receives, count)
        await asyncio.sleep(0.002)


_WAITING = re.compile(r"^conveyor_waiting_receives (\S+)$", re.MULTILINE)


async def until_server_waiting(url: str, count: int, timeout: float = 5.0) -> None:
    """`until_waiting` for a server process (one worker): its /metrics gauge."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as http:
        while True:
            found = _WAITING.search((await http.get("/metrics")).text)
            waiting = float(found.group(1)) if found else None
            if waiting == count:
                return
            assert time.monotonic() < deadline, (waiting, count)
            await asyncio.sleep(0.01)
