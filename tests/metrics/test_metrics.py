"""`/metrics` parsed with prometheus_client's parser; request ids; JSON log lines."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.broker.broker import Broker
from conveyor.http.app import create_app
from conveyor.http.requestlog import JsonFormatter, RequestIdFilter
from conveyor.ledger import NewDelivery
from tests.conftest import OpenBroker
from tests.http.server import start_server


@pytest.fixture
async def served(open_broker: OpenBroker) -> AsyncIterator[tuple[httpx.AsyncClient, Broker]]:
    broker = await open_broker(stats_cache_seconds=0)
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http, broker


async def _scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


async def test_queue_message_and_http_metrics(
        served: tuple[httpx.AsyncClient, Broker]) -> None:
    http, _ = served
    await http.post("/v1/queues", json={"name": "dead"})
    await http.post("/v1/queues", json={"name": "work", "attributes": {
        "dead_letter_queue": "dead", "max_receive_count": 1}})
    for _ in range(3):
        sent = await http.post("/v1/queues/work/messages",
                               json={"messages": [{"body": "a"}, {"body": "b"}]})
        assert sent.status_code == 201
    got = (await http.post("/v1/queues/work/messages/receive",
                           json={"max_messages": 2})).json()["messages"]
    await http.post("/v1/queues/work/messages/delete",
                    json={"receipt_handles": [got[0]["receipt_handle"]]})
    samples = await _scrape(http)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("conveyor_queue_visible_messages", queue="work") == 4
    assert value("conveyor_queue_in_flight_messages", queue="work") == 1
    assert value("conveyor_queue_delayed_messages", queue="work") == 0
    assert value("conveyor_queue_visible_messages", queue="dead") == 0
    assert value("conveyor_queue_oldest_message_age_seconds", queue="work") >= 0
    assert value("conveyor_waiting_receives") == 0
    assert value("conveyor_messages_total", queue="work", event="sent") == 6
    assert value("conveyor_messages_total", queue="work", event="received") == 2
    assert value("conveyor_messages_total", queue="work", event="deleted") == 1
    route = "/v1/queues/{queue}/messages"
    assert value("conveyor_http_requests_total", method="POST", route=route,
                 status="201") == 3
    assert value("conveyor_http_request_duration_seconds_count", method="POST",
                 route=route) == 3
    assert value("conveyor_http_requests_total", method="POST", route="/v1/queues",
                 status="201") == 2
    # One series per route template, never per queue; scrapes are not counted.
    assert not any("work" in dict(labels).get("route", "") for _, labels in samples)
    assert not any(dict(labels).get("route") == "/metrics" for _, labels in samples)


async def test_dead_lettered_total_and_job_counts(
        served: tuple[httpx.AsyncClient, Broker], clock: object) -> None:
    http, broker = served
    await broker.create_queue("dlq")
    await broker.create_queue("src", {"dead_letter_queue": "dlq", "max_receive_count": 1})
    monitor = http._transport.app.state.monitor  # type: ignore[attr-defined]
    await monitor.sample()
    await http.post("/v1/queues/src/messages", json={"messages": [{"body": "x"}]})
    [m] = (await http.post("/v1/queues/src/messages/receive", json={})).json()["messages"]
    await http.post("/v1/queues/src/messages/visibility", json={"entries": [
        {"receipt_handle": m["receipt_handle"], "visibility_timeout": 0}]})
    assert (await http.post("/v1/queues/src/messages/receive",
                            json={})).json()["messages"] == []  # moved to dlq
    await monitor.sample()
    samples = await _scrape(http)
    assert samples[("conveyor_messages_dead_lettered_total", (("queue", "src"),))] == 1
    assert samples[("conveyor_queue_dead_letter_messages", (("queue", "src"),))] == 1
    assert samples[("conveyor_queue_visible_messages", (("queue", "dlq"),))] == 1
    assert samples[("conveyor_workers", ())] == 0
    assert not any(name == "conveyor_jobs" for name, _ in samples)  # no tracked jobs yet
    await broker.jobs.status_set("j1", "queued", queue="src", task="send")
    samples = await _scrape(http)
    labels = (("queue", "src"), ("status", "queued"), ("task", "send"))
    assert samples[("conveyor_jobs", labels)] == 1
    assert samples[("conveyor_jobs", (("queue", "src"), ("status", "dead"), ("task", "send")))] == 0


async def test_request_ids(served: tuple[httpx.AsyncClient, Broker]) -> None:
    http, _ = served
    given = await http.get("/healthz", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    fresh = await http.get("/healthz", headers={"x-request-id": "bad id\twith junk"})
    assert fresh.headers["x-request-id"] != "bad id\twith junk"
    assert len(fresh.headers["x-request-id"]) == 32
    other = await http.get("/healthz")
    assert other.headers["x-request-id"] != fresh.headers["x-request-id"]


async def test_access_log_json_lines_carry_the_request_id(
        served: tuple[httpx.AsyncClient, Broker], caplog: pytest.LogCaptureFixture) -> None:
    http, _ = served
    with caplog.at_level(logging.INFO, logger="conveyor.access"):
        await http.get("/v1/queues", headers={"x-request-id": "req-42"})
    [record] = [r for r in caplog.records if r.name == "conveyor.access"]
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "conveyor.access"
    assert line["level"] == "info"
    assert line["route"] == "/v1/queues"
    assert line["status"] == 200
    assert line["method"] == "GET"
    assert line["duration_ms"] >= 0
    assert "GET /v1/queues 200" in line["message"]
    assert line["request_id"] == "req-42"


def test_serve_logs_json_lines_with_request_ids(tmp_path: Path) -> None:
    server = start_server(tmp_path, ["--database", f"sqlite:///{tmp_path}/c.db", "--no-sqs",
                                     "--log-format", "json"])
    try:
        assert httpx.get(server.url + "/v1/queues",
                         headers={"x-request-id": "trace-me-1"}).status_code == 200
        httpx.get(server.url + "/v1/queues/nope")
    finally:
        assert server.stop() == 0
    records = [json.loads(line) for line in server.logs().splitlines()
               if line.startswith("{")]
    [access] = [r for r in records if r.get("request_id") == "trace-me-1"]
    assert access["logger"] == "conveyor.access" and access["status"] == 200
    assert access["route"] == "/v1/queues"
    missing = [r for r in records if r.get("path") == "/v1/queues/nope"]
    assert missing[0]["status"] == 404 and missing[0]["route"] == "/v1/queues/{queue}"
    assert len(missing[0]["request_id"]) == 32


async def test_jobs_and_deliveries_on_metrics_and_dashboard(
        served: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = served
    await broker.ledger.record([NewDelivery("d1", "email", "a@example.com"),
                                NewDelivery("d2", "email", "b@example.com"),
                                NewDelivery("d3", "webhook", "https://example.com/h")])
    samples = await _scrape(http)
    assert samples[("conveyor_deliveries", (("channel", "email"), ("status", "queued")))] == 2
    assert samples[("conveyor_deliveries", (("channel", "webhook"),
                                            ("status", "queued")))] == 1
    page = (await http.get("/")).text
    assert 'id="section-jobs"' in page and 'id="section-deliveries"' in page
    assert "email · queued" in page
