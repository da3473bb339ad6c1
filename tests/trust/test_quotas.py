"""Quotas: a queue's maximum in flight and maximum depth answer OverLimit (429 on the native
API, `OverLimit` on the SQS endpoint) instead of growing without bound; both backends."""

from __future__ import annotations

import json

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.errors import OverLimit
from conveyor.http.app import create_app
from conveyor.models import Body, SendEntry
from conveyor.sqs.app import create_sqs_app
from conveyor.storage.factory import storage_from_url


@pytest.fixture
async def limited(database_url: str, clock: ManualClock,
                  monkeypatch: pytest.MonkeyPatch) -> Broker:
    monkeypatch.setattr("conveyor.broker.quotas.FAR_CACHE_SECONDS", 0.0)
    broker = Broker(storage_from_url(database_url), clock=clock, sweep_interval=None,
                    max_in_flight=5, max_depth=8)
    broker.quotas.cache_seconds = 0.0
    await broker.start()
    yield broker  # type: ignore[misc]
    await broker.close()


async def test_broker_refuses_past_its_limits(limited: Broker) -> None:
    await limited.create_queue("q")
    await limited.send("q", [SendEntry(Body(str(i))) for i in range(8)])
    with pytest.raises(OverLimit, match="limit is 8"):
        await limited.send("q", [SendEntry(Body("one too many"))])
    got = await limited.receive("q", 5)
    assert len(got) == 5
    with pytest.raises(OverLimit, match="in flight"):
        await limited.receive("q", 1)
    await limited.delete("q", [got[0].receipt_handle])
    assert len(await limited.receive("q", 10)) == 1  # room for one more lease
    await limited.send("q", [SendEntry(Body("fits again"))])


async def test_native_429_and_sqs_over_limit(limited: Broker) -> None:
    native = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(limited)),
                               base_url="http://localhost")
    sqs = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_sqs_app(limited)),
                            base_url="http://localhost")
    async with native, sqs:
        assert (await native.post("/v1/queues", json={"name": "q"})).status_code == 201
        sent = await native.post("/v1/queues/q/messages",
                                 json={"messages": [{"body": i} for i in range(8)]})
        assert sent.status_code == 201
        over = await native.post("/v1/queues/q/messages", json={"messages": [{"body": 9}]})
        assert over.status_code == 429 and over.json()["error"]["code"] == "over_limit"
        answer = await sqs.post("/", content=json.dumps({
            "QueueUrl": "http://testserver/000000000000/q", "MessageBody": "x"}), headers={
            "content-type": "application/x-amz-json-1.0",
            "x-amz-target": "AmazonSQS.SendMessage"})
        assert answer.status_code == 403
        assert answer.json()["__type"].endswith("#OverLimit")
        received = await native.post("/v1/queues/q/messages/receive",
                                     json={"max_messages": 5})
        assert len(received.json()["messages"]) == 5
        again = await native.post("/v1/queues/q/messages/receive", json={})
        assert again.status_code == 429
