"""10,000 queues: `/metrics` and the dashboard stay small, and idle queues cost the monitor
and the retention sweep nothing per queue (the CPU figure is in benchmarks/idle_queues.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.dashboard.series import Monitor
from conveyor.dashboard.views import PAGE_SIZE
from conveyor.http.app import create_app
from conveyor.http.metrics import QUEUE_SERIES
from conveyor.models import Body, SendEntry
from tests.conftest import OpenBroker

QUEUES = 10_000


@pytest.fixture
async def many(open_broker: OpenBroker) -> AsyncIterator[tuple[httpx.AsyncClient, Broker]]:
    broker = await open_broker()
    for start in range(0, QUEUES, 500):
        await asyncio.gather(*(broker.create_queue(f"idle-{i:05d}")
                               for i in range(start, start + 500)))
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                 timeout=60) as http:
        yield http, broker


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_ten_thousand_queues(many: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = many
    await broker.send("idle-09999", [SendEntry(Body("x"))] * 5)
    await broker.send("idle-05000", [SendEntry(Body("x"))] * 2)

    scraped = await http.get("/metrics")
    assert scraped.status_code == 200
    assert len(scraped.content) < 64_000, len(scraped.content)
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(scraped.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    visible = {s.labels["queue"]: s.value for s in samples["conveyor_queue_visible_messages"]}
    assert len(visible) == QUEUE_SERIES
    assert visible["idle-09999"] == 5 and visible["idle-05000"] == 2  # the deepest first
    assert "idle-00000" in visible  # then the others by name
    assert samples["conveyor_queues"][0].value == QUEUES
    totals = {s.labels["state"]: s.value for s in samples["conveyor_queues_messages"]}
    assert totals == {"visible": 7, "in_flight": 0, "delayed": 0}
    assert f"at most {QUEUE_SERIES} queues" in scraped.text  # the cap, in the HELP text

    page = await http.get("/")
    assert page.status_code == 200
    assert len(page.content) < 100_000, len(page.content)
    assert len(re.findall(r'<tr data-name="', page.text)) == PAGE_SIZE
    assert f'<small id="queue-count">{QUEUES}</small>' in page.text
    found = await http.get("/", params={"prefix": "idle-0999"})
    assert re.findall(r'<tr data-name="([^"]+)"', found.text)[-1] == "idle-09999"

    # Idle queues get no points and no per-queue work: only the two holding messages.
    monitor = http._transport.app.state.monitor  # type: ignore[attr-defined]
    await monitor.sample()
    assert set(monitor.latest.points) == {"idle-09999", "idle-05000"}
    assert len(monitor.history) <= 2
    expired: list[int] = []
    expire = broker.storage.message_expire

    async def counting(queue_id: int, before: str, limit: int) -> int:
        expired.append(queue_id)
        return await expire(queue_id, before, limit)

    broker.storage.message_expire = counting  # type: ignore[method-assign]
    await broker.sweep()
    assert len(expired) == 2


async def test_queues_made_or_changed_elsewhere_show_at_the_next_sample(
        open_broker: OpenBroker, clock: ManualClock) -> None:
    here, elsewhere = await open_broker(), await open_broker()  # two processes' brokers
    monitor = Monitor(here)
    await monitor.sample()
    await elsewhere.create_queue("made-there")
    assert "made-there" in (await monitor.sample()).queues
    clock.advance(1)  # (a change within the same millisecond waits for `catalog_seconds`)
    await elsewhere.update_queue("made-there", {"paused": True})
    assert (await monitor.sample()).queues["made-there"].attributes.paused
    await elsewhere.delete_queue("made-there")
    assert "made-there" not in (await monitor.sample()).queues
