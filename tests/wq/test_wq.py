"""The WQ-style API under /wq: exact status codes and shapes; one id per message, which
PATCH takes while the message is locked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.http.app import create_app
from conveyor.models import Body, SendEntry
from tests.conftest import OpenBroker


@pytest.fixture
async def wq(open_broker: OpenBroker) -> AsyncIterator[tuple[httpx.AsyncClient, Broker]]:
    broker = await open_broker()
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http, broker


async def _post(http: httpx.AsyncClient, value: Any) -> str:
    response = await http.post("/wq", content=json.dumps(value),
                               headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text
    assert list(response.json()) == ["messageID"]
    message_id: str = response.json()["messageID"]
    return message_id


async def test_post_any_json_then_get_it_back(wq: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = wq
    values = [{"user": 1, "tags": ["a"]}, [1, 2], "text", 3.5, None, True,
              {"big": 123456789012345678901234567890}]
    ids = [await _post(http, v) for v in values]
    assert len(set(ids)) == len(values)
    queue = await broker.get_queue("wq")
    assert queue.attributes.visibility_timeout == 1  # the seed's 1,000 ms lock
    response = await http.get("/wq")
    assert response.status_code == 200
    data = response.json()
    assert list(data) == ["messages"]
    assert all(list(m) == ["id", "body"] for m in data["messages"])
    assert [m["body"] for m in data["messages"]] == values
    # Locked: nothing more to hand out until the lock lapses.
    assert (await http.get("/wq")).json() == {"messages": []}


async def test_invalid_json_is_400(wq: tuple[httpx.AsyncClient, Broker]) -> None:
    http, _ = wq
    for raw in (b"{not json", b"", b"[1,", b"NaN", b'{"x": 1e400}', b"-1e999"):
        response = await http.post("/wq", content=raw,
                                   headers={"content-type": "application/json"})
        assert response.status_code == 400, raw
        assert response.json()["error"]["code"] == "malformed_json"


async def test_amount_defaults_to_10_and_is_capped_at_1000(
        wq: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = wq
    await _post(http, {"n": 0})
    await broker.send("wq", [SendEntry(Body.of({"n": i})) for i in range(1, 1000)])
    await broker.send("wq", [SendEntry(Body.of({"n": i})) for i in range(1000, 1020)])
    assert len((await http.get("/wq")).json()["messages"]) == 10
    assert len((await http.get("/wq", params={"amount": 3})).json()["messages"]) == 3
    capped = (await http.get("/wq", params={"amount": 5000})).json()["messages"]
    assert len(capped) == 1000
    assert len((await http.get("/wq", params={"amount": 100})).json()["messages"]) == 7


async def test_bad_amount_is_400(wq: tuple[httpx.AsyncClient, Broker]) -> None:
    http, _ = wq
    for amount in ("0", "-1", "ten", "1.5", ""):
        response = await http.get("/wq", params={"amount": amount})
        assert response.status_code == 400, amount


async def test_patch_deletes_while_locked(wq: tuple[httpx.AsyncClient, Broker],
                                          clock: ManualClock) -> None:
    http, broker = wq
    posted = await _post(http, {"job": 1})
    [message] = (await http.get("/wq")).json()["messages"]
    assert message["id"] == posted  # the id POST returned
    response = await http.patch(f"/wq/{posted}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await http.patch(f"/wq/{posted}")).status_code == 404  # already gone
    clock.advance(5)
    assert (await http.get("/wq")).json() == {"messages": []}
    assert (await broker.queue_stats("wq")).total == 0


async def test_patch_after_the_lock_expired_is_404_and_deletes_nothing(
        wq: tuple[httpx.AsyncClient, Broker], clock: ManualClock) -> None:
    http, broker = wq
    posted = await _post(http, {"job": 2})
    [message] = (await http.get("/wq")).json()["messages"]
    clock.advance(1.001)  # the 1,000 ms lock expired: the message went back to the queue
    response = await http.patch(f"/wq/{message['id']}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert (await broker.queue_stats("wq")).visible == 1
    [again] = (await http.get("/wq")).json()["messages"]
    assert again == {"id": posted, "body": {"job": 2}}
    assert (await http.patch(f"/wq/{posted}")).status_code == 204


async def test_patch_before_any_get_is_404(wq: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = wq
    posted = await _post(http, {"job": 3})
    assert (await http.patch(f"/wq/{posted}")).status_code == 404  # not locked yet
    assert (await broker.queue_stats("wq")).visible == 1


async def test_unknown_ids_are_404(wq: tuple[httpx.AsyncClient, Broker]) -> None:
    http, _ = wq
    await _post(http, {"job": 4})
    await http.get("/wq")
    for bad in ("nope", "0" * 48 + "-ff", "00000000-0000-7000-8000-000000000000",
                "x" * 5000):
        response = await http.patch(f"/wq/{bad}")
        assert response.status_code == 404, bad
        assert response.json()["error"]["code"] == "not_found"
    # A NUL is refused in any URL before a route reads it (conveyor.http.nul).
    response = await http.patch("/wq/%00")
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_input"


async def test_odd_input_is_never_a_500(wq: tuple[httpx.AsyncClient, Broker]) -> None:
    http, _ = wq
    headers = {"content-type": "application/json"}
    big = json.dumps({"blob": "x" * 1_100_000})
    assert 400 <= (await http.post("/wq", content=big, headers=headers)).status_code < 500
    assert (await http.post("/wq", content="{}")).status_code == 415  # not said to be JSON
    for value in ("\u0000", {"nested": [[[[]]]]}, 10**40, "é"):
        response = await http.post("/wq", content=json.dumps(value), headers=headers)
        assert response.status_code == 201
    response = await http.post("/wq", content=b'{"x": "\\ud800"}', headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_message"
    for amount in ("99999999999999999999", "1e3", "%00"):
        assert (await http.get("/wq", params={"amount": amount})).status_code in (200, 400)
    for bad in ("", "a/b", "\u00e9" * 10):  # "" redirects to /wq; a/b is no route
        assert (await http.patch(f"/wq/{bad}")).status_code in (307, 404, 405)
