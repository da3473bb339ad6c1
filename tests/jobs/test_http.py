"""The job system's routes, through the app (httpx's ASGI transport), on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.http.app import create_app
from tests.http.helpers import assert_error

# Job ids are message ids (UUIDs): a report under any other is refused.
JOB_A, JOB_B = "01900000-0000-7000-8000-00000000000a", "01900000-0000-7000-8000-00000000000b"
JOB_1, JOB_2, JOB_3 = (f"01900000-0000-7000-8000-00000000000{i}" for i in (1, 2, 3))


async def _client(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@pytest.fixture
async def http(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on `create_app(broker)`, on each backend."""
    async for client in _client(broker):
        yield client


@pytest.fixture
async def sqlite_http(sqlite_broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """The same on SQLite only, for checks made before any storage is reached."""
    async for client in _client(sqlite_broker):
        yield client


async def test_take_and_penalize(http: httpx.AsyncClient, clock: ManualClock) -> None:
    body: dict[str, Any] = {"key": "task:send_email", "rate": 50, "per": 10, "want": 60}
    response = await http.post("/v1/limits/take", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"granted": 50, "retry_after": 0.2}
    response = await http.post("/v1/limits/take", json={**body, "burst": None, "want": 1})
    assert response.json() == {"granted": 0, "retry_after": 0.2}
    response = await http.post("/v1/limits/penalize", json={"key": body["key"], "seconds": 5})
    assert response.status_code == 204 and response.content == b""
    clock.advance(1)
    response = await http.post("/v1/limits/take", json=body)
    assert response.json() == {"granted": 0, "retry_after": 4.0}


async def test_slots(http: httpx.AsyncClient, clock: ManualClock) -> None:
    slot = {"key": "smtp", "holder": "w1"}
    response = await http.post("/v1/limits/acquire",
                               json={**slot, "limit": 3, "want": 5, "lease_seconds": 10})
    assert response.status_code == 200 and response.json() == {"acquired": 3}
    response = await http.post("/v1/limits/release", json={**slot, "count": 1})
    assert response.status_code == 204
    response = await http.post("/v1/limits/renew", json=slot)
    assert response.status_code == 200 and response.json() == {"held": 2}
    clock.advance(61)
    response = await http.post("/v1/limits/renew", json=slot)
    assert response.json() == {"held": 0}


async def test_cron_claim(http: httpx.AsyncClient, clock: ManualClock) -> None:
    claim = {"schedule": "nightly_digest", "tick_at": clock.ms}
    first = await http.post("/v1/cron/claim", json=claim)
    again = await http.post("/v1/cron/claim", json=claim)
    assert (first.json(), again.json()) == ({"claimed": True}, {"claimed": False})


async def test_job_status(http: httpx.AsyncClient, clock: ManualClock) -> None:
    response = await http.put(f"/v1/jobs/{JOB_1}", json={
        "status": "succeeded", "queue": "emails", "task": "send", "attempts": 2,
        "result": {"ok": [1, 2]}, "keep_seconds": 600})
    assert response.status_code == 204, response.text
    response = await http.get(f"/v1/jobs/{JOB_1}")
    assert response.status_code == 200
    assert response.json() == {
        "job_id": JOB_1, "status": "succeeded", "queue": "emails", "task": "send",
        "attempts": 2, "error": None, "result": {"ok": [1, 2]}, "keep_seconds": 600,
        "updated_at": clock.ms, "progress": None, "key": None, "created_at": clock.ms,
        "args": None, "attempt_history": [],
        "timeline": [{"at": clock.ms, "event": "created", "detail": "on emails"},
                     {"at": clock.ms, "event": "succeeded", "detail": "last update"}]}
    response = await http.post("/v1/jobs/status", json={"jobs": [
        {"job_id": JOB_2, "status": "failed", "queue": "emails", "error": "550"},
        {"job_id": JOB_3, "status": "running", "queue": "other"}]})
    assert response.status_code == 204, response.text
    counts = (await http.get("/v1/jobs/counts", params={"queue": "emails"})).json()["counts"]
    assert (counts["succeeded"], counts["failed"], counts["running"]) == (1, 1, 0)
    counts = (await http.get("/v1/jobs/counts")).json()["counts"]
    assert counts["running"] == 1
    assert_error(await http.get(f"/v1/jobs/{JOB_A}"), 404, "job_not_found")


@pytest.mark.parametrize(("method", "path", "body", "code", "field"), [
    ("POST", "/v1/limits/take", {"key": "k", "rate": 0, "per": 1}, "invalid_input", "rate"),
    ("POST", "/v1/limits/take", {"key": "", "rate": 1, "per": 1}, "invalid_input", "key"),
    ("POST", "/v1/limits/take", {"key": "k", "rate": 1}, "missing_parameter", "per"),
    ("POST", "/v1/limits/take", {"key": "k", "rate": "many", "per": 1}, "invalid_input",
     "rate"),
    ("POST", "/v1/limits/take", {"key": "k", "rate": 1, "per": 1, "extra": 1},
     "invalid_input", "extra"),
    ("POST", "/v1/limits/penalize", {"key": "k", "seconds": -1}, "invalid_input", "seconds"),
    ("POST", "/v1/limits/acquire", {"key": "k", "limit": 1, "holder": "h", "want": 0},
     "invalid_input", "want"),
    ("POST", "/v1/limits/renew", {"key": "k", "holder": "h", "lease_seconds": 0},
     "invalid_input", "lease_seconds"),
    ("POST", "/v1/limits/release", {"key": "k", "holder": "h", "count": 0},
     "invalid_input", "count"),
    ("POST", "/v1/cron/claim", {"schedule": "s", "tick_at": -5}, "invalid_input", "tick_at"),
    ("PUT", f"/v1/jobs/{JOB_A}", {"status": "finished", "queue": "q"}, "invalid_input", "status"),
    ("POST", "/v1/jobs/status", {"jobs": [{"job_id": JOB_A, "status": "queued", "queue": "q"},
                                          {"job_id": JOB_B, "status": "queued"}]},
     "missing_parameter", "queue"),
])
async def test_bad_input_is_422_in_the_one_shape(sqlite_http: httpx.AsyncClient, method: str,
                                                  path: str, body: dict[str, Any],
                                                  code: str, field: str) -> None:
    response = await sqlite_http.request(method, path, json=body)
    assert_error(response, 422, code, field=field)


async def test_batch_errors_name_the_entry(sqlite_http: httpx.AsyncClient) -> None:
    response = await sqlite_http.post("/v1/jobs/status", json={"jobs": [
        {"job_id": JOB_A, "status": "queued", "queue": "q"},
        {"job_id": JOB_B, "status": "queued", "queue": "q", "attempts": -1}]})
    assert_error(response, 422, "invalid_input", index=1, field="attempts")
    assert_error(await sqlite_http.get("/v1/jobs", params={"queue": "not a queue"}), 422,
                 field="queue")


async def test_malformed_json_is_400(sqlite_http: httpx.AsyncClient) -> None:
    response = await sqlite_http.post("/v1/limits/take", content=b"{nope",
                               headers={"content-type": "application/json"})
    assert_error(response, 400, "malformed_json")


async def test_routes_are_in_the_openapi_document(sqlite_http: httpx.AsyncClient) -> None:
    paths = (await sqlite_http.get("/openapi.json")).json()["paths"]
    for path, method in [("/v1/limits/take", "post"), ("/v1/limits/penalize", "post"),
                         ("/v1/limits/acquire", "post"), ("/v1/limits/renew", "post"),
                         ("/v1/limits/release", "post"), ("/v1/cron/claim", "post"),
                         ("/v1/jobs/{job_id}", "put"), ("/v1/jobs/{job_id}", "get"),
                         ("/v1/jobs/status", "post"), ("/v1/jobs", "get"),
                         ("/v1/jobs/counts", "get"), ("/v1/jobs/{job_id}/retry", "post"),
                         ("/v1/jobs/retry", "post"), ("/v1/jobs/delete", "post"),
                         ("/v1/jobs/{job_id}", "delete")]:
        assert method in paths[path], (path, method)
    take = paths["/v1/limits/take"]["post"]
    assert "422" in take["responses"] and "requestBody" in take
