"""A NUL in a URL is bad input on every route and both backends (PostgreSQL's text cannot
hold one: it was a 500 `storage_error` there, a 200 or 404 on SQLite). The SQS endpoint's
rule: tests/sqs/test_nul.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.http.app import create_app
from tests.conftest import OpenBroker

URLS = ["/v1/queues?prefix=%00", "/v1/queues?after=a%00b", "/v1/suppressions?after=%00",
        "/v1/templates?after=%00", "/v1/jobs?task=%00", "/v1/jobs?key=x%00",
        "/v1/jobs/%00", "/v1/tasks/%00", "/ui/jobs?task=%00", "/v1/queues/q%00"]


@pytest.fixture
async def api(open_broker: OpenBroker) -> AsyncIterator[httpx.AsyncClient]:
    broker = await open_broker()
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@pytest.mark.parametrize("url", URLS)
async def test_a_nul_in_the_url_is_422_on_both_backends(api: httpx.AsyncClient,
                                                        url: str) -> None:
    for method in ("GET", "DELETE"):
        got = await api.request(method, url)
        assert got.status_code == 422, (method, url, got.text)
        error = got.json()["error"]
        assert error["code"] == "invalid_input" and "NUL" in error["message"]


async def test_a_nul_in_a_body_is_refused_as_before_and_creates_nothing(
        api: httpx.AsyncClient) -> None:
    made = await api.post("/v1/queues", json={"name": "q\u0000"})
    assert made.status_code == 422
    assert (await api.get("/v1/queues")).json()["queues"] == []
