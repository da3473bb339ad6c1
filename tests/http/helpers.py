"""Assertions and small calls shared by the HTTP tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_error(response: httpx.Response, status: int, code: str | None = None, *,
                 index: int | None = None, field: str | None = None) -> dict[str, Any]:
    """The response is an error of this status (and code, index, field) in the one shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if index is not None:
        assert error.get("index") == index, error
    if field is not None:
        assert error.get("field") == field, error
    return dict(error)


def send(client: httpx.Client, queue: str, *bodies: Any, **fields: Any) -> list[str]:
    """Send bodies in one batch; returns their ids."""
    response = client.post(f"/v1/queues/{queue}/messages",
                           json={"messages": [{"body": b, **fields} for b in bodies]})
    assert response.status_code == 201, response.text
    return [m["id"] for m in response.json()["messages"]]


def receive(client: httpx.Client, queue: str, **fields: Any) -> list[dict[str, Any]]:
    """Receive once; returns the messages."""
    response = client.post(f"/v1/queues/{queue}/messages/receive", json=fields)
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def stats(client: httpx.Client, queue: str) -> dict[str, Any]:
    """Exact counts of a queue."""
    response = client.get(f"/v1/queues/{queue}")
    assert response.status_code == 200, response.text
    return dict(response.json()["stats"])
