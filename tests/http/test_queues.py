"""Queue routes: create (201/200/409), list, get, patch, delete, purge, pause."""

from __future__ import annotations

import httpx

from tests.http.conftest import NewQueue
from tests.http.helpers import assert_error, receive, send, stats


def test_create_then_same_again_then_different(client: httpx.Client) -> None:
    body = {"name": "create-me", "attributes": {"visibility_timeout": 45, "tags": {"a": "b"}}}
    created = client.post("/v1/queues", json=body)
    assert created.status_code == 201, created.text
    queue = created.json()
    assert queue["name"] == "create-me"
    assert queue["region"] == "us-east-1"
    assert queue["attributes"]["visibility_timeout"] == 45
    assert queue["attributes"]["tags"] == {"a": "b"}
    assert queue["stats"] == {"visible": 0, "in_flight": 0, "delayed": 0,
                              "oldest_age_seconds": None, "dead_letters": 0}
    assert isinstance(queue["created_at"], int)

    again = client.post("/v1/queues", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["attributes"] == queue["attributes"]

    other = client.post("/v1/queues", json={"name": "create-me",
                                            "attributes": {"visibility_timeout": 46}})
    assert_error(other, 409, "queue_already_exists")


def test_create_bad_input(client: httpx.Client) -> None:
    assert_error(client.post("/v1/queues", json={"name": "bad name!"}), 422,
                 "invalid_queue_name", field="name")
    assert_error(client.post("/v1/queues", json={"name": "x" * 81}), 422, "invalid_queue_name")
    assert_error(client.post("/v1/queues", json={}), 422, "missing_parameter", field="name")
    assert_error(client.post("/v1/queues", json={"name": "q", "attributes": {"nope": 1}}),
                 422, "invalid_attribute", field="nope")
    assert_error(client.post("/v1/queues", json={
        "name": "q", "attributes": {"visibility_timeout": 43_201}}),
        422, "invalid_attribute", field="visibility_timeout")
    assert_error(client.post("/v1/queues", json={
        "name": "q", "attributes": {"retention_seconds": "soon"}}),
        422, field="retention_seconds")
    assert_error(client.post("/v1/queues", json={
        "name": "q", "attributes": {"max_receive_count": 3}}), 422, "invalid_attribute")
    assert_error(client.post("/v1/queues", json={
        "name": "q", "attributes": {"max_receive_count": 3, "dead_letter_queue": "absent"}}),
        422, "invalid_attribute", field="dead_letter_queue")
    assert_error(client.post("/v1/queues", json=["q"]), 422)
    assert_error(client.post("/v1/queues", content=b'{"name": ',
                             headers={"content-type": "application/json"}),
                 400, "malformed_json")


def test_unlogged_is_unsupported_on_sqlite(client: httpx.Client) -> None:
    response = client.post("/v1/queues", json={"name": "fast",
                                               "attributes": {"durability": "unlogged"}})
    assert_error(response, 422, "unsupported")


def test_list_get_and_stats(client: httpx.Client, new_queue: NewQueue) -> None:
    first = new_queue("-list-a")
    second = new_queue("-list-b", delay_seconds=0)
    send(client, first, "one", "two")
    listed = client.get("/v1/queues")
    assert listed.status_code == 200
    names = [q["name"] for q in listed.json()["queues"]]
    assert first in names and second in names
    assert names == sorted(names)

    by_prefix = client.get("/v1/queues", params={"prefix": first})
    assert [q["name"] for q in by_prefix.json()["queues"]] == [first]

    got = client.get(f"/v1/queues/{first}")
    assert got.status_code == 200
    assert got.json()["stats"]["visible"] == 2
    assert got.json()["stats"]["oldest_age_seconds"] is not None
    assert_error(client.get("/v1/queues", params={"limit": 0}), 422, field="limit")


def test_unknown_queue_is_404_everywhere(client: httpx.Client) -> None:
    base = "/v1/queues/no-such-queue"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"attributes": {"paused": True}}),
        ("DELETE", base, None),
        ("POST", f"{base}/purge", None),
        ("POST", f"{base}/messages", {"messages": [{"body": "x"}]}),
        ("POST", f"{base}/messages/receive", {}),
        ("POST", f"{base}/messages/delete", {"receipt_handles": ["x"]}),
        ("POST", f"{base}/messages/visibility",
         {"entries": [{"receipt_handle": "x", "visibility_timeout": 1}]}),
        ("GET", f"{base}/messages", None),
        ("POST", f"{base}/redrive", None),
        ("GET", f"{base}/redrive", None),
    ]:
        response = client.request(method, path, json=body)
        assert_error(response, 404, "queue_not_found")


def test_patch(client: httpx.Client, queue: str) -> None:
    response = client.patch(f"/v1/queues/{queue}",
                            json={"attributes": {"visibility_timeout": 5, "delay_seconds": 2}})
    assert response.status_code == 200, response.text
    assert response.json()["attributes"]["visibility_timeout"] == 5
    assert response.json()["attributes"]["delay_seconds"] == 2
    assert_error(client.patch(f"/v1/queues/{queue}", json={"attributes": {"delay_seconds": -1}}),
                 422, "invalid_attribute", field="delay_seconds")
    assert_error(client.patch(f"/v1/queues/{queue}", json={}), 422, "missing_parameter")
    assert client.get(f"/v1/queues/{queue}").json()["attributes"]["delay_seconds"] == 2


def test_delete_queue(client: httpx.Client, queue: str) -> None:
    send(client, queue, "bye")
    response = client.delete(f"/v1/queues/{queue}")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(client.get(f"/v1/queues/{queue}"), 404, "queue_not_found")


def test_purge(client: httpx.Client, queue: str) -> None:
    send(client, queue, *range(7))
    response = client.post(f"/v1/queues/{queue}/purge")
    assert response.status_code == 200
    assert response.json() == {"purged": 7}
    assert stats(client, queue)["visible"] == 0


def test_paused_queue_accepts_sends_and_delivers_nothing(client: httpx.Client,
                                                         queue: str) -> None:
    paused = client.patch(f"/v1/queues/{queue}", json={"attributes": {"paused": True}})
    assert paused.json()["attributes"]["paused"] is True
    send(client, queue, "held")
    assert receive(client, queue) == []
    assert stats(client, queue)["visible"] == 1
    client.patch(f"/v1/queues/{queue}", json={"attributes": {"paused": False}})
    assert [m["body"] for m in receive(client, queue)] == ["held"]
