"""What every queue shares takes a key of every queue: rate limits and concurrency slots
(`/v1/limits/*`) and cron ticks (`/v1/cron/claim`) `receive` on `*`, as a worker's key
has; `/metrics` (every queue's figures) some grant on `*`. A key of some queues gets 403
`forbidden` there and changes nothing. In process (the app over httpx's ASGI transport),
both backends, as test_key_scopes.py; the worker's own client (`conveyor.client`) with a
worker's key still takes tokens, slots and ticks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor.client.async_client import AsyncClient
from conveyor.http.app import create_app
from conveyor.http.auth import EVERY, Need, required
from tests.conftest import OpenBroker
from tests.trust.test_key_scopes import Api, keyed_api

SHARED: list[tuple[str, dict[str, Any]]] = [
    ("/v1/limits/take", {"key": "rate:t", "rate": 5, "per": 60}),
    ("/v1/limits/penalize", {"key": "rate:t", "seconds": 600}),
    ("/v1/limits/acquire", {"key": "concurrency:t", "limit": 1, "holder": "h"}),
    ("/v1/limits/renew", {"key": "concurrency:t", "holder": "h"}),
    ("/v1/limits/release", {"key": "concurrency:t", "holder": "h"}),
    ("/v1/cron/claim", {"schedule": "nightly", "tick_at": 1_000}),
]


@pytest.fixture
async def api(open_broker: OpenBroker, monkeypatch: pytest.MonkeyPatch
              ) -> AsyncIterator[Api]:
    """Keys: `teama` of the teama-* queues only, `worker` receiving everywhere, `ops` all."""
    async with keyed_api(open_broker, monkeypatch, {
            "teama": ("send,receive,manage:teama-*",), "worker": ("receive", "send:teama-*"),
            "ops": ("send,receive,manage",)}) as api:
        yield api


def test_shared_routes_need_a_grant_on_every_queue() -> None:
    for path, _ in SHARED:
        assert required("POST", path) == Need("receive", EVERY)
    assert required("GET", "/metrics") == Need(None, EVERY)
    assert required("POST", "/v1/workers/heartbeat") == Need("receive")  # unchanged


async def test_a_key_of_some_queues_may_not_touch_shared_limits_or_ticks(api: Api) -> None:
    for path, body in SHARED:
        status, error = await api.call("teama", "POST", path, body)
        assert status == 403, (path, error)
        assert "on every queue" in error["error"]["message"]
    # Nothing changed: the penalty was not set, no slot is held, the tick is still free.
    status, grant = await api.call("worker", "POST", "/v1/limits/take",
                                   {"key": "rate:t", "rate": 5, "per": 60})
    assert status == 200 and grant["granted"] == 1
    status, slots = await api.call("worker", "POST", "/v1/limits/acquire",
                                   {"key": "concurrency:t", "limit": 1, "holder": "w"})
    assert status == 200 and slots == {"acquired": 1}
    status, tick = await api.call("worker", "POST", "/v1/cron/claim",
                                  {"schedule": "nightly", "tick_at": 1_000})
    assert status == 200 and tick == {"claimed": True}


async def test_metrics_are_for_keys_of_every_queue(api: Api) -> None:
    await api.broker.create_queue("teamb-secret")
    status, error = await api.call("teama", "GET", "/metrics")
    assert status == 403 and error["error"]["message"].endswith("every queue.")
    for key in ("worker", "ops"):
        answer = await api.http.get("/metrics", headers={
            "authorization": f"Bearer {api.tokens[key]}"})
        assert answer.status_code == 200 and "teamb-secret" in answer.text


async def test_the_workers_client_with_its_key_still_works(api: Api) -> None:
    transport = httpx.ASGITransport(app=create_app(api.broker, require_keys=True))
    client = AsyncClient("http://localhost", api_key=api.tokens["worker"],
                         transport=transport)
    try:
        assert (await client.limits.take("rate:job", 10, 1.0)).granted == 1
        assert await client.limits.acquire("concurrency:job", 2, "w1") == 1
        assert await client.limits.renew("concurrency:job", "w1") == 1
        await client.limits.release("concurrency:job", "w1")
        await client.limits.penalize("rate:job", 1.0)
        assert await client.jobs.cron_claim("every-minute", 60_000) is True
    finally:
        await client.close()
