"""Message routes: bodies and attributes, batches, leases, long polling, peek, retry."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import pytest

from tests.http.conftest import NewQueue
from tests.http.helpers import assert_error, receive, send, stats
from tests.http.server import ServerProcess
from tests.support.waiting import until_server_waiting

BODIES: list[Any] = [
    '{"a":1}',  # a JSON-looking string stays a string
    {"a": 1},
    "plain text ✓ with ünïcode",
    [1, "two", {"three": [3.5, None, True]}],
    42,
    -1.25,
    True,
    None,
    {"nested": {"deep": {"list": [{"x": ""}]}}, "big": 12345678901234567890123},
]


def test_bodies_come_back_exactly_as_sent(client: httpx.Client, queue: str) -> None:
    send(client, queue, *BODIES)
    got = receive(client, queue, max_messages=100)
    assert [m["body"] for m in got] == BODIES
    assert [type(m["body"]) for m in got] == [type(b) for b in BODIES]
    message = got[0]
    assert set(message) >= {"id", "body", "attributes", "receipt_handle", "receive_count",
                            "sent_at"}
    assert message["receive_count"] == 1
    assert message["attributes"] == {}


def test_attributes_round_trip_binary_as_base64(client: httpx.Client, queue: str) -> None:
    raw = bytes(range(256))
    attributes = {
        "kind": {"type": "String", "value": "welcome"},
        "count": {"type": "Number", "value": "12.5"},
        "as_number": {"type": "Number", "value": 7},
        "blob": {"type": "Binary", "value": base64.b64encode(raw).decode()},
        "custom": {"type": "String.lang", "value": "en"},
    }
    response = client.post(f"/v1/queues/{queue}/messages",
                           json={"messages": [{"body": "x", "attributes": attributes}]})
    assert response.status_code == 201, response.text
    [message] = receive(client, queue)
    got = message["attributes"]
    assert got["kind"] == {"type": "String", "value": "welcome"}
    assert got["count"] == {"type": "Number", "value": "12.5"}
    assert got["as_number"] == {"type": "Number", "value": "7"}
    assert base64.b64decode(got["blob"]["value"]) == raw
    assert got["blob"]["type"] == "Binary"
    assert got["custom"] == {"type": "String.lang", "value": "en"}


@pytest.mark.parametrize(("attribute", "field"), [
    ({"type": "Binary", "value": "not base64!"}, "attributes"),
    ({"type": "Blob", "value": "x"}, "attributes"),
    ({"type": "Number", "value": "twelve"}, "attributes"),
    ({"type": "String"}, "attributes"),
    ("String", "attributes"),
])
def test_bad_attributes(client: httpx.Client, queue: str, attribute: Any,
                        field: str) -> None:
    response = client.post(f"/v1/queues/{queue}/messages", json={"messages": [
        {"body": "fine"}, {"body": "bad", "attributes": {"a": attribute}}]})
    assert_error(response, 422, index=1, field=field)
    assert stats(client, queue)["visible"] == 0


def test_too_many_attributes(client: httpx.Client, queue: str) -> None:
    attributes = {f"a{i}": {"type": "String", "value": "v"} for i in range(11)}
    response = client.post(f"/v1/queues/{queue}/messages",
                           json={"messages": [{"body": "x", "attributes": attributes}]})
    assert_error(response, 422, "invalid_message", index=0, field="attributes")


@pytest.mark.parametrize(("entry", "code", "field"), [
    ({"body": "x", "priority": 10}, "invalid_message", "priority"),
    ({"body": "x", "priority": -1}, "invalid_message", "priority"),
    ({"body": "x", "delay_seconds": -5}, "invalid_message", "delay_seconds"),
    ({"body": "x", "delay_seconds": 10**9}, "invalid_message", "delay_seconds"),
    ({"body": ""}, "invalid_message", "body"),
    ({"body": "nul \u0000 inside"}, "invalid_message", None),
    ({"body": "x", "deduplication_id": "has space"}, "invalid_message", "deduplication_id"),
    ({"body": "x", "surprise": 1}, "invalid_input", "surprise"),
    ({"bdy": "x"}, "missing_parameter", "body"),
    ({"body": "x", "priority": "high"}, "invalid_message", "priority"),
    ({"body": "x", "priority": True}, "invalid_message", "priority"),
    ({"body": "x", "group_id": 7}, "invalid_message", "group_id"),
    ({"body": "x", "attributes": []}, "invalid_message", "attributes"),
    ("just a string", "invalid_input", "messages"),
])
def test_batch_is_all_or_nothing_and_names_the_bad_index(
        client: httpx.Client, queue: str, entry: Any, code: str,
        field: str | None) -> None:
    messages = [{"body": "ok-0"}, {"body": "ok-1"}, entry, {"body": "ok-3"}]
    response = client.post(f"/v1/queues/{queue}/messages", json={"messages": messages})
    assert_error(response, 422, code, index=2, field=field)
    counts = stats(client, queue)
    assert (counts["visible"], counts["delayed"]) == (0, 0)


def test_oversize_body_and_batch_limits(client: httpx.Client, new_queue: NewQueue) -> None:
    small = new_queue(max_message_bytes=1024)
    response = client.post(f"/v1/queues/{small}/messages",
                           json={"messages": [{"body": "a" * 100}, {"body": "b" * 1025}]})
    assert_error(response, 422, "message_too_large", index=1)
    assert_error(client.post(f"/v1/queues/{small}/messages", json={"messages": []}),
                 422, "empty_batch")
    too_many = {"messages": [{"body": i} for i in range(1001)]}
    assert_error(client.post(f"/v1/queues/{small}/messages", json=too_many),
                 422, "too_many_entries")
    assert_error(client.post(f"/v1/queues/{small}/messages", json={}), 422,
                 "missing_parameter", field="messages")
    assert_error(client.post(f"/v1/queues/{small}/messages", json={"messages": {}}), 422,
                 "invalid_input", field="messages")
    assert_error(client.post(f"/v1/queues/{small}/messages", json=[]), 422, "invalid_input")
    assert stats(client, small)["visible"] == 0


def test_a_batch_of_1000(client: httpx.Client, queue: str) -> None:
    ids = send(client, queue, *({"n": i} for i in range(1000)))
    assert len(set(ids)) == 1000
    got = receive(client, queue, max_messages=1000)
    assert sorted(m["body"]["n"] for m in got) == list(range(1000))
    response = client.post(f"/v1/queues/{queue}/messages/delete",
                           json={"receipt_handles": [m["receipt_handle"] for m in got]})
    assert all(r["status"] == "ok" for r in response.json()["results"])
    assert stats(client, queue)["in_flight"] == 0


def test_malformed_json_is_400(client: httpx.Client, queue: str) -> None:
    for path in ("/messages", "/messages/receive", "/messages/delete", "/messages/visibility"):
        response = client.post(f"/v1/queues/{queue}{path}", content=b"{not json",
                               headers={"content-type": "application/json"})
        assert_error(response, 400, "malformed_json")


def test_out_of_range_numbers_and_lone_surrogates_change_nothing(
        client: httpx.Client, queue: str) -> None:
    # 1e400 would decode as infinity and be stored as null; a lone surrogate is no UTF-8.
    for raw, status, code in (
            (b'{"messages": [{"body": {"x": 1e400}}]}', 400, "malformed_json"),
            (b'{"messages": [{"body": [-1e999]}]}', 400, "malformed_json"),
            (b'{"messages": [{"body": {"x": "\\ud800"}}]}', 422, "invalid_message")):
        response = client.post(f"/v1/queues/{queue}/messages", content=raw,
                               headers={"content-type": "application/json"})
        assert_error(response, status, code)
    assert stats(client, queue)["visible"] == 0


def test_request_over_10_mib_is_413(client: httpx.Client, queue: str) -> None:
    big = b'{"messages": [{"body": "' + b"x" * (10 * 1024 * 1024) + b'"}]}'
    response = client.post(f"/v1/queues/{queue}/messages", content=big,
                           headers={"content-type": "application/json"})
    assert_error(response, 413, "request_too_large")


def test_streamed_request_over_10_mib_is_413(server: ServerProcess, queue: str) -> None:
    def chunks() -> Any:
        yield b'{"messages": [{"body": "'
        for _ in range(11):
            yield b"x" * (1024 * 1024)
        yield b'"}]}'

    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post(f"/v1/queues/{queue}/messages", content=chunks(),
                             headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "request_too_large")


def test_receive_bad_input(client: httpx.Client, queue: str) -> None:
    url = f"/v1/queues/{queue}/messages/receive"
    assert_error(client.post(url, json={"max_messages": 0}), 422, field="max_messages")
    assert_error(client.post(url, json={"max_messages": 1001}), 422, field="max_messages")
    assert_error(client.post(url, json={"wait_seconds": 21}), 422, field="wait_seconds")
    assert_error(client.post(url, json={"visibility_timeout": -1}), 422,
                 field="visibility_timeout")
    assert client.post(url).status_code == 200  # no body: the defaults


def test_lease_hides_message_and_stale_handle_deletes_nothing(client: httpx.Client,
                                                              queue: str) -> None:
    send(client, queue, "once")
    [first] = receive(client, queue, visibility_timeout=30)
    assert receive(client, queue) == []  # invisible to everyone else
    release = client.post(f"/v1/queues/{queue}/messages/visibility", json={
        "entries": [{"receipt_handle": first["receipt_handle"], "visibility_timeout": 0}]})
    assert release.json()["results"][0]["status"] == "ok"
    [second] = receive(client, queue)
    assert second["id"] == first["id"]
    assert second["receive_count"] == 2
    assert second["receipt_handle"] != first["receipt_handle"]

    response = client.post(f"/v1/queues/{queue}/messages/delete", json={
        "receipt_handles": [first["receipt_handle"], "garbage", second["receipt_handle"]]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["stale", "invalid", "ok"]
    assert results[0]["receipt_handle"] == first["receipt_handle"]
    assert results[0]["message"]
    assert stats(client, queue)["in_flight"] == 0


def test_stale_handle_does_not_extend_the_newer_lease(client: httpx.Client,
                                                      queue: str) -> None:
    send(client, queue, "x")
    [first] = receive(client, queue)
    client.post(f"/v1/queues/{queue}/messages/visibility", json={
        "entries": [{"receipt_handle": first["receipt_handle"], "visibility_timeout": 0}]})
    [second] = receive(client, queue, visibility_timeout=1)
    response = client.post(f"/v1/queues/{queue}/messages/visibility", json={"entries": [
        {"receipt_handle": first["receipt_handle"], "visibility_timeout": 600},
        {"receipt_handle": second["receipt_handle"], "visibility_timeout": 99_999},
        {"receipt_handle": second["receipt_handle"], "visibility_timeout": 0},
    ]})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["stale", "invalid", "ok"]
    [third] = receive(client, queue)
    assert third["receive_count"] == 3


def test_visibility_and_delete_batch_limits(client: httpx.Client, queue: str) -> None:
    base = f"/v1/queues/{queue}/messages"
    assert_error(client.post(f"{base}/delete", json={"receipt_handles": []}), 422,
                 "empty_batch")
    assert_error(client.post(f"{base}/delete", json={"receipt_handles": ["h"] * 1001}), 422,
                 "too_many_entries")
    assert_error(client.post(f"{base}/visibility", json={"entries": [{"receipt_handle": "h"}]}),
                 422, "missing_parameter", index=0, field="visibility_timeout")


def test_deduplication_returns_the_first_id(client: httpx.Client, queue: str) -> None:
    first = client.post(f"/v1/queues/{queue}/messages", json={
        "messages": [{"body": "a", "deduplication_id": "order-1"}]}).json()["messages"][0]
    again = client.post(f"/v1/queues/{queue}/messages", json={
        "messages": [{"body": "b", "deduplication_id": "order-1"}]}).json()["messages"][0]
    assert again == {"id": first["id"], "duplicate": True}
    assert first["duplicate"] is False
    assert stats(client, queue)["visible"] == 1


def test_priority_and_delay(client: httpx.Client, queue: str) -> None:
    client.post(f"/v1/queues/{queue}/messages", json={"messages": [
        {"body": "low"}, {"body": "high", "priority": 9}, {"body": "later", "delay_seconds": 60},
    ]})
    assert stats(client, queue)["delayed"] == 1
    assert [m["body"] for m in receive(client, queue, max_messages=10)] == ["high", "low"]


def test_peek_does_not_lease(client: httpx.Client, queue: str) -> None:
    ids = send(client, queue, "a", {"b": 2}, "c")
    response = client.get(f"/v1/queues/{queue}/messages", params={"limit": 2})
    assert response.status_code == 200
    page = response.json()["messages"]
    assert [m["id"] for m in page] == ids[:2]
    assert [m["body"] for m in page] == ["a", {"b": 2}]
    rest = client.get(f"/v1/queues/{queue}/messages", params={"after": page[-1]["id"]})
    assert [m["id"] for m in rest.json()["messages"]] == ids[2:]
    assert stats(client, queue)["visible"] == 3
    assert_error(client.get(f"/v1/queues/{queue}/messages", params={"limit": 0}), 422)
    assert_error(client.get(f"/v1/queues/{queue}/messages", params={"limit": "many"}), 422,
                 field="limit")


def test_retry_keeps_count_and_records_error(client: httpx.Client, queue: str) -> None:
    send(client, queue, "job")
    [message] = receive(client, queue)
    response = client.post(f"/v1/queues/{queue}/messages/retry", json={
        "receipt_handle": message["receipt_handle"], "delay_seconds": 0, "error": "boom"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    [again] = receive(client, queue)
    assert again["receive_count"] == 2
    assert again["last_error"] == "boom"


def test_retry_can_dead_letter_now_keeping_the_source(client: httpx.Client,
                                                      new_queue: NewQueue) -> None:
    dlq = new_queue("-dlq")
    queue = new_queue(dead_letter_queue=dlq, max_receive_count=5)
    [sent] = send(client, queue, "not a job")
    [message] = receive(client, queue)
    response = client.post(f"/v1/queues/{queue}/messages/retry", json={
        "receipt_handle": message["receipt_handle"], "error": "bad body",
        "dead_letter": True})
    assert response.status_code == 200 and response.json()["status"] == "ok", response.text
    [dead] = client.get(f"/v1/queues/{dlq}/messages").json()["messages"]
    assert dead["id"] == sent and dead["last_error"] == "bad body"
    assert dead["source_queue"] == queue
    assert stats(client, queue)["dead_letters"] == 1
    # A queue without a dead-letter queue refuses, and the lease is untouched.
    plain = new_queue()
    send(client, plain, "x")
    [held] = receive(client, plain)
    assert_error(client.post(f"/v1/queues/{plain}/messages/retry", json={
        "receipt_handle": held["receipt_handle"], "dead_letter": True}), 422,
        field="dead_letter")
    assert stats(client, plain)["in_flight"] == 1


def test_long_poll_returns_after_wait_seconds_when_empty(client: httpx.Client,
                                                         queue: str) -> None:
    started = time.monotonic()
    assert receive(client, queue, wait_seconds=1) == []
    assert 0.9 <= time.monotonic() - started < 3.0


async def test_long_poll_returns_as_soon_as_a_message_arrives(server: ServerProcess,
                                                              queue: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        started = time.monotonic()
        poll = asyncio.create_task(http.post(f"/v1/queues/{queue}/messages/receive",
                                             json={"wait_seconds": 15}))
        await until_server_waiting(server.url, 1)
        assert not poll.done()
        sent = await http.post(f"/v1/queues/{queue}/messages",
                               json={"messages": [{"body": "wake up"}]})
        assert sent.status_code == 201
        response = await poll
        elapsed = time.monotonic() - started
    assert [m["body"] for m in response.json()["messages"]] == ["wake up"]
    assert elapsed < 2.0
