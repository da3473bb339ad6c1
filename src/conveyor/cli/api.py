"""The native HTTP API's calls, in one place (the seed of the Python client, `conveyor.client`).

Each method is one request; errors come back as `ApiError` carrying the server's code and
message. Answers are the server's JSON, as dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from conveyor.config import ClientConfig

# A long poll may hold the request this long before the server answers.
_POLL_MARGIN_SECONDS = 10.0

__all__ = ["ApiClient", "ApiError"]


class ApiError(Exception):
    """The server answered with an error (or could not be reached: status 0)."""

    def __init__(self, status: int, code: str, message: str,
                 index: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.index = index
        self.field = field


class ApiClient:
    """A synchronous client for the native JSON API."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        key = self.config.api_key
        self._http = httpx.Client(base_url=self.config.url.rstrip("/"),
                                  timeout=self.config.timeout,
                                  headers={"authorization": f"Bearer {key}"} if key else None)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # queues -------------------------------------------------------------------------
    def create_queue(self, name: str, attributes: Mapping[str, Any] | None = None
                     ) -> dict[str, Any]:
        """Create a queue (or get it back when it exists with the same attributes)."""
        body: dict[str, Any] = {"name": name}
        if attributes:
            body["attributes"] = dict(attributes)
        return self._call("POST", "/v1/queues", body)

    def list_queues(self, prefix: str = "") -> list[dict[str, Any]]:
        """Every queue (optionally by name prefix), with counts."""
        queues: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params = {"prefix": prefix, **({"after": after} if after else {})}
            page = self._call("GET", "/v1/queues", params=params)["queues"]
            queues.extend(page)
            if len(page) < 1000:
                return queues
            after = page[-1]["name"]

    def get_queue(self, name: str) -> dict[str, Any]:
        """A queue's attributes and exact counts."""
        return self._call("GET", _queue(name))

    def update_queue(self, name: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Change some attributes of a queue."""
        return self._call("PATCH", _queue(name), {"attributes": dict(attributes)})

    def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages."""
        self._call("DELETE", _queue(name))

    def purge_queue(self, name: str) -> int:
        """Delete every message of a queue; returns how many."""
        return int(self._call("POST", _queue(name, "/purge"))["purged"])

    # messages -----------------------------------------------------------------------
    def send(self, queue: str, messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Send a batch (each message a dict with `body` and optional fields)."""
        return list(self._call("POST", _queue(queue, "/messages"),
                               {"messages": list(messages)})["messages"])

    def receive(self, queue: str, max_messages: int = 10, visibility_timeout: int | None = None,
                wait_seconds: int | None = None) -> list[dict[str, Any]]:
        """Lease up to `max_messages` messages, long-polling up to `wait_seconds`."""
        body: dict[str, Any] = {"max_messages": max_messages}
        if visibility_timeout is not None:
            body["visibility_timeout"] = visibility_timeout
        if wait_seconds is not None:
            body["wait_seconds"] = wait_seconds
        timeout = self.config.timeout + (wait_seconds or 0) + _POLL_MARGIN_SECONDS
        return list(self._call("POST", _queue(queue, "/messages/receive"), body,
                               timeout=timeout)["messages"])

    def delete(self, queue: str, receipt_handles: Sequence[str]) -> list[dict[str, Any]]:
        """Acknowledge messages; one result per handle."""
        return list(self._call("POST", _queue(queue, "/messages/delete"),
                               {"receipt_handles": list(receipt_handles)})["results"])

    def change_visibility(self, queue: str, entries: Sequence[tuple[str, int]]
                          ) -> list[dict[str, Any]]:
        """Set new lease lengths: (receipt handle, seconds) pairs; 0 releases."""
        body = {"entries": [{"receipt_handle": h, "visibility_timeout": s} for h, s in entries]}
        return list(self._call("POST", _queue(queue, "/messages/visibility"), body)["results"])

    def peek(self, queue: str, limit: int = 10, after: str | None = None
             ) -> list[dict[str, Any]]:
        """Look at messages without leasing them."""
        params: dict[str, Any] = {"limit": limit, **({"after": after} if after else {})}
        return list(self._call("GET", _queue(queue, "/messages"), params=params)["messages"])

    # redrive ------------------------------------------------------------------------
    def redrive(self, queue: str, destination: str | None = None,
                max_per_second: int | None = None) -> dict[str, Any]:
        """Start moving a dead-letter queue's messages back; returns the task."""
        body = {k: v for k, v in (("destination", destination),
                                  ("max_per_second", max_per_second)) if v is not None}
        return self._call("POST", _queue(queue, "/redrive"), body)

    def task(self, task_id: str) -> dict[str, Any]:
        """A move task."""
        return self._call("GET", f"/v1/tasks/{quote(task_id, safe='')}")

    # jobs ---------------------------------------------------------------------------
    def job_status(self, job_id: str) -> dict[str, Any]:
        """A tracked job's status (ApiError 404 `job_not_found` when unknown or expired)."""
        return self._call("GET", f"/v1/jobs/{quote(job_id, safe='')}")

    def job_counts(self, queue: str | None = None) -> dict[str, int]:
        """Tracked jobs in each status, of one queue or all."""
        params = {"queue": queue} if queue else None
        return dict(self._call("GET", "/v1/jobs", params=params)["counts"])

    # plumbing -----------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, *,
              params: Mapping[str, Any] | None = None, timeout: float | None = None
              ) -> dict[str, Any]:
        try:
            response = self._http.request(
                method, path, json=body, params=params,
                timeout=timeout if timeout is not None else self.config.timeout)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable",
                           f"Cannot reach {self.config.url}: {exc or type(exc).__name__}"
                           ) from exc
        if response.status_code == 204:
            return {}
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_error:
            error = data.get("error") if isinstance(data, dict) else None
            if not isinstance(error, dict):
                raise ApiError(response.status_code, "http_error",
                               f"HTTP {response.status_code}: {response.text[:200]}")
            raise ApiError(response.status_code, str(error.get("code")),
                           str(error.get("message")), error.get("index"), error.get("field"))
        if not isinstance(data, dict):
            raise ApiError(response.status_code, "bad_response",
                           "The server's answer is not a JSON object.")
        return data


def _queue(name: str, rest: str = "") -> str:
    return f"/v1/queues/{quote(name, safe='')}{rest}"
