"""A process holds at most `max_long_polls` waiting receives; more answer at once."""

from __future__ import annotations

import asyncio
import time

from conveyor.models import Body, SendEntry
from tests.conftest import OpenBroker
from tests.support.waiting import until_waiting


async def test_receives_past_the_cap_answer_at_once(open_broker: OpenBroker) -> None:
    broker = await open_broker(max_long_polls=3)
    await broker.create_queue("q")
    # One message each: a waiter taking all three would leave the others to wait out 5 s.
    waiting = [asyncio.create_task(broker.receive("q", 1, wait_seconds=5)) for _ in range(3)]
    await until_waiting(broker, 3)
    started = time.monotonic()
    assert await broker.receive("q", wait_seconds=5) == []  # the fourth does not wait
    assert time.monotonic() - started < 1.0
    await broker.send("q", [SendEntry(Body.of(i)) for i in range(3)])
    got = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert sorted(m.body.value() for batch in got for m in batch) == [0, 1, 2]
    # The slots are free again: a new receive may wait.
    later = asyncio.create_task(broker.receive("q", wait_seconds=5))
    await until_waiting(broker, 1)
    await broker.send("q", [SendEntry(Body.of("late"))])
    assert [m.body.value() for m in await asyncio.wait_for(later, 5)] == ["late"]
