"""API keys on the native API: grants per queue pattern, stored hashed, revocation, off only
on loopback without keys. In process (the app over httpx's ASGI transport), both backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.broker.api_keys import ApiKeys
from conveyor.broker.broker import Broker
from conveyor.errors import Conflict, InvalidInput
from conveyor.http.app import create_app
from conveyor.http.auth import Need, is_loopback, required
from conveyor.keys import hash_token, parse_grant, parse_grants


def test_grants_parse_and_match() -> None:
    grant = parse_grant("send,receive:orders-*")
    assert grant.allows("send", "orders-eu") and grant.allows("receive", "orders-")
    assert not grant.allows("manage", "orders-eu") and not grant.allows("send", "billing")
    assert parse_grant("manage").allows("manage", "anything")
    assert str(grant) == "send,receive:orders-*"
    for bad in ("", "read", "send:", "send:bad name", "send,delete:x", ":x"):
        if bad == "send:":
            assert parse_grant(bad).pattern == "*"
            continue
        with pytest.raises(InvalidInput):
            parse_grant(bad)
    with pytest.raises(InvalidInput):
        parse_grants([])


def test_routes_need_the_right_action() -> None:
    assert required("GET", "/healthz") is None and required("GET", "/openapi.json") is None
    assert required("POST", "/v1/queues/o/messages") == Need("send", "o")
    assert required("GET", "/v1/queues/o/messages") == Need("manage", "o")
    for part in ("receive", "delete", "visibility", "retry"):
        assert required("POST", f"/v1/queues/o/messages/{part}") == Need("receive", "o")
    assert required("GET", "/v1/queues/o/stream") == Need("receive", "o")
    assert required("DELETE", "/v1/queues/o") == Need("manage", "o")
    assert required("GET", "/v1/queues/o") == Need(None, "o")
    assert required("POST", "/v1/queues") == Need("manage", name_in_body=True)
    assert required("POST", "/ui/queues/o/purge") == Need("manage", "o")
    assert required("GET", "/") == Need("manage")
    assert required("POST", "/wq") == Need("send", "wq")
    assert required("GET", "/metrics") == Need(None, "*")  # every queue's figures
    # The job explorer: reading is a worker's right; retry and delete move or delete
    # messages, as a redrive or a purge does.
    assert required("GET", "/v1/jobs") == Need("receive")
    for action in ("POST /v1/jobs/j1/retry", "POST /v1/jobs/retry", "POST /v1/jobs/delete",
                   "DELETE /v1/jobs/j1"):
        assert required(*action.split()) == Need("manage"), action
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")


@pytest.fixture
async def keys(broker: Broker) -> ApiKeys:
    return ApiKeys(broker, cache_seconds=0)


async def client_for(broker: Broker, require: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(broker, require_keys=require)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as client:
        yield client


@pytest.fixture
async def loopback(broker: Broker, monkeypatch: pytest.MonkeyPatch
                   ) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setattr("conveyor.broker.api_keys.CACHE_SECONDS", 0.0)
    async for client in client_for(broker, require=False):
        yield client


@pytest.fixture
async def public(broker: Broker, monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setattr("conveyor.broker.api_keys.CACHE_SECONDS", 0.0)
    async for client in client_for(broker, require=True):
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_loopback_without_keys_is_open_until_a_key_exists(
        loopback: httpx.AsyncClient, keys: ApiKeys) -> None:
    assert (await loopback.post("/v1/queues", json={"name": "open"})).status_code == 201
    _, token = await keys.create("ops", parse_grants(["manage"]))
    refused = await loopback.get("/v1/queues")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert (await loopback.get("/v1/queues", headers=bearer(token))).status_code == 200
    assert (await loopback.get("/healthz")).status_code == 200


async def test_public_without_keys_refuses_everything(public: httpx.AsyncClient) -> None:
    assert (await public.get("/v1/queues")).status_code == 401
    assert (await public.post("/v1/queues", json={"name": "x"})).status_code == 401
    assert (await public.get("/healthz")).status_code == 200
    assert (await public.get("/openapi.json")).status_code == 200


async def test_grants_per_queue_pattern(public: httpx.AsyncClient, keys: ApiKeys,
                                        broker: Broker) -> None:
    _, admin = await keys.create("admin", parse_grants(["manage:orders-*"]))
    _, producer = await keys.create("producer", parse_grants(["send:orders-*"]))
    _, worker = await keys.create("worker", parse_grants(["receive:orders-*"]))
    await broker.create_queue("billing")

    async def call(token: str, method: str, path: str, body: object = None) -> int:
        answer = await public.request(method, path, json=body, headers=bearer(token))
        return answer.status_code

    assert await call(admin, "POST", "/v1/queues", {"name": "orders-eu"}) == 201
    assert await call(admin, "POST", "/v1/queues", {"name": "billing-2"}) == 403
    assert await call(producer, "POST", "/v1/queues", {"name": "orders-us"}) == 403
    send = {"messages": [{"body": "hello"}]}
    assert await call(producer, "POST", "/v1/queues/orders-eu/messages", send) == 201
    assert await call(producer, "POST", "/v1/queues/billing/messages", send) == 403
    assert await call(worker, "POST", "/v1/queues/orders-eu/messages", send) == 403
    assert await call(producer, "POST", "/v1/queues/orders-eu/messages/receive", {}) == 403
    got = await public.post("/v1/queues/orders-eu/messages/receive", json={},
                            headers=bearer(worker))
    assert got.status_code == 200 and len(got.json()["messages"]) == 1
    handle = got.json()["messages"][0]["receipt_handle"]
    assert await call(worker, "POST", "/v1/queues/orders-eu/messages/delete",
                      {"receipt_handles": [handle]}) == 200
    assert await call(worker, "POST", "/v1/queues/orders-eu/purge") == 403
    assert await call(admin, "POST", "/v1/queues/orders-eu/purge") == 200
    assert await call(worker, "GET", "/v1/queues/orders-eu") == 200
    assert await call(worker, "GET", "/v1/queues/billing") == 403
    forbidden = await public.delete("/v1/queues/billing", headers=bearer(admin))
    assert forbidden.json()["error"]["code"] == "forbidden"
    assert "admin" in forbidden.json()["error"]["message"]
    assert (await public.get("/v1/queues", headers={"x-api-key": worker})).status_code == 200
    assert (await public.get("/v1/queues", headers=bearer(worker + "x"))).status_code == 401


async def test_notification_data_needs_a_key_of_the_notify_queues(
        public: httpx.AsyncClient, keys: ApiKeys) -> None:
    _, narrow = await keys.create("orders", parse_grants(["send,receive:orders-*"]))
    _, reader = await keys.create("notify-worker", parse_grants(["receive:notify-*"]))
    _, ops = await keys.create("notify-ops", parse_grants(["manage:notify-*"]))
    suppress = {"channel": "email", "address": "ann@example.com", "reason": "asked"}

    async def call(token: str, method: str, path: str, body: object = None) -> int:
        answer = await public.request(method, path, json=body, headers=bearer(token))
        return answer.status_code

    for path in ("/v1/suppressions", "/v1/notifications/counts",
                 "/v1/notifications?recipient=ann", "/v1/recipients/ann",
                 "/v1/notifications/series", "/ui/deliveries", "/ui/deliveries/d-1"):
        assert await call(narrow, "GET", path) == 403, path
    # the delivery view reads what the API does: a reader of the notify queues may
    for path in ("/v1/notifications/series", "/ui/deliveries?q=ann"):
        assert await call(reader, "GET", path) == 200, path
    assert await call(reader, "GET", "/ui/deliveries/d-1") == 404  # let in: there is none
    assert await call(narrow, "POST", "/v1/suppressions", suppress) == 403
    assert await call(reader, "POST", "/v1/suppressions", suppress) == 403
    assert await call(ops, "POST", "/v1/suppressions", suppress) == 204
    listed = await public.get("/v1/suppressions", headers=bearer(reader))
    assert listed.status_code == 200 and "ann@example.com" in listed.text
    assert await call(narrow, "DELETE", "/v1/suppressions", suppress) == 403


async def test_keys_are_stored_hashed_and_revocable(public: httpx.AsyncClient,
                                                    keys: ApiKeys, broker: Broker) -> None:
    key, token = await keys.create("ci", parse_grants(["send,receive,manage"]))
    assert token.startswith("cvk_") and len(token) > 40
    listed = await keys.list()
    assert [k.name for k in listed] == ["ci"] and listed[0].id == key.id
    assert await broker.storage.api_key_by_hash(hash_token(token)) is not None  # type: ignore[attr-defined]
    assert token not in repr(listed)
    with pytest.raises(Conflict):
        await keys.create("ci", parse_grants(["send"]))
    assert (await public.get("/v1/queues", headers=bearer(token))).status_code == 200
    assert await keys.revoke("ci") == 1
    assert await keys.revoke("ci") == 0
    assert (await public.get("/v1/queues", headers=bearer(token))).status_code == 401
    again, _ = await keys.create("ci", parse_grants(["send"]))  # the name is free again
    assert again.id != key.id
    assert [k.revoked_at is None for k in await keys.list()] == [False, True]
