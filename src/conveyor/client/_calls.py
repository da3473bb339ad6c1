"""The native HTTP API's calls as data: each is a request plus a parser of the answer.

Both clients (`Client`, `AsyncClient`) run the same `Call` objects, so the wire form of every
operation is written once. Answers become the same models the in-process `Broker` returns;
error answers become the same `conveyor.errors` classes (see `_errors.py`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import orjson

from conveyor.client._errors import error_from
from conveyor.errors import StorageError
from conveyor.models import (
    Body,
    BodyKind,
    EntryResult,
    Message,
    MessageAttribute,
    MoveTask,
    PeekedMessage,
    Queue,
    QueueAttributes,
    QueueStats,
    SendEntry,
    SendResult,
    VisibilityEntry,
    dumps_json,
)

T = TypeVar("T")

# A long poll holds the request this long at most; the HTTP timeout must outlast it.
_POLL_MARGIN_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and how to read its (successful) answer: `parse(status, json)`."""

    method: str
    path: str
    parse: Callable[[int, Any], T]
    json: Any = None
    params: Mapping[str, str] | None = None
    extra_timeout: float = 0.0
    empty: bool = field(default=False)  # the answer has no body (204)
    missing_is_none: bool = False  # a 404 answer means "none": parse(404, None)


def auth_headers(headers: Mapping[str, str] | None, api_key: str | None) -> dict[str, str]:
    """Default headers of a client: the caller's, plus the API key as a bearer token."""
    out = dict(headers or {})
    if api_key:
        out["authorization"] = f"Bearer {api_key}"
    return out


def request_options(call: Call[Any], timeout: float) -> dict[str, Any]:
    """Keyword arguments of `httpx.Client.request` / `AsyncClient.request` for a call."""
    content = None if call.json is None else orjson.dumps(call.json)
    return {"content": content, "params": call.params,
            "headers": {"content-type": "application/json"} if content else None,
            "timeout": timeout + call.extra_timeout}


def answer(call: Call[T], status: int, content: bytes) -> T:
    """The parsed answer of a call, or the matching `conveyor.errors` exception."""
    try:
        data = _loads(content) if content else None
    except ValueError:  # not the server's JSON: a proxy's error page, say
        data = None
        if status < 400:
            raise StorageError(f"The server's answer ({status}) is not JSON.") from None
    if status == 404 and call.missing_is_none:
        return call.parse(404, None)
    if status >= 400:
        raise error_from(status, data)
    return call.parse(status, data)


_LONG_NUMBER = re.compile(rb"\d{20}")


def _loads(content: bytes) -> Any:
    # orjson reads an integer beyond 64 bits as a float, silently; a JSON body may hold one
    # (an export must copy it exactly), so a run of 20 digits sends the answer to the
    # standard library, which keeps it exact. Both raise ValueError on what is not JSON.
    if _LONG_NUMBER.search(content):
        return json.loads(content)
    return orjson.loads(content)


def queue_path(name: str) -> str:
    """The path of a queue (names are URL-safe, but quote anyway)."""
    return f"/v1/queues/{quote(name, safe='')}"


# models from JSON -------------------------------------------------------------------
def queue_of(data: Mapping[str, Any]) -> Queue:
    """A queue from its JSON form (the wire carries no internal id: it is 0 here)."""
    return Queue(0, data["region"], data["name"], QueueAttributes.from_json(data["attributes"]),
                 data["created_at"], data["updated_at"])


def stats_of(data: Mapping[str, Any]) -> QueueStats:
    """Queue counts from their JSON form."""
    return QueueStats(data["visible"], data["in_flight"], data["delayed"],
                      data["oldest_age_seconds"], data["dead_letters"])


def body_of(value: Any) -> Body:
    """A body as received: a JSON string is a text body, any other value a JSON one."""
    if isinstance(value, str):
        return Body(value, BodyKind.TEXT)
    return Body(dumps_json(value), BodyKind.JSON)


def attributes_of(data: Mapping[str, Any] | None) -> dict[str, MessageAttribute]:
    """Typed attributes from JSON (Binary values are base64 on the wire)."""
    if not data:
        return {}
    import base64

    out: dict[str, MessageAttribute] = {}
    for name, item in data.items():
        value: str | bytes = item["value"]
        if item["type"].split(".", 1)[0] == "Binary":
            value = base64.b64decode(item["value"])
        out[name] = MessageAttribute(item["type"], value)
    return out


def message_of(queue: str, m: Mapping[str, Any]) -> Message:
    """A received message from JSON."""
    return Message(m["id"], queue, body_of(m["body"]), attributes_of(m.get("attributes")),
                   m["receipt_handle"], m["receive_count"], m["sent_at"],
                   m["first_received_at"], m["lease_until"], m.get("priority", 0),
                   m.get("group_id"), m.get("deduplication_id"), m.get("last_error"))


def peeked_of(m: Mapping[str, Any]) -> PeekedMessage:
    """A message looked at without a lease, from JSON."""
    return PeekedMessage(m["id"], body_of(m["body"]), attributes_of(m.get("attributes")),
                         m["receive_count"], m["sent_at"], m["visible_at"],
                         m.get("priority", 0), m.get("group_id"), m.get("deduplication_id"),
                         m.get("last_error"), m.get("source_queue"))


def entry_of(data: Mapping[str, Any]) -> EntryResult:
    """One entry's outcome."""
    return EntryResult(data["receipt_handle"], data["status"], data.get("message"))


def _body_json(body: Body) -> Any:
    # A JSON body travels as the JSON value itself; text as a JSON string.
    return orjson.Fragment(body.text) if body.kind is BodyKind.JSON else body.text


def entry_json(entry: SendEntry) -> dict[str, Any]:
    """A send entry in the request's form (only what differs from the defaults)."""
    out: dict[str, Any] = {"body": _body_json(entry.body)}
    if entry.delay_seconds is not None:
        out["delay_seconds"] = entry.delay_seconds
    if entry.attributes:
        out["attributes"] = {k: a.to_json() for k, a in entry.attributes.items()}
    if entry.priority:
        out["priority"] = entry.priority
    if entry.deduplication_id is not None:
        out["deduplication_id"] = entry.deduplication_id
    if entry.group_id is not None:
        out["group_id"] = entry.group_id
    if entry.claim is not None:
        out["claim"] = {"key": entry.claim.key, "seconds": entry.claim.seconds,
                        "replace": entry.claim.replace}
    return out


# queue calls ------------------------------------------------------------------------
def create_queue(name: str, attributes: Mapping[str, Any] | None) -> Call[tuple[Queue, bool]]:
    """POST /v1/queues: 201 created, 200 it existed with the same attributes."""
    body: dict[str, Any] = {"name": name}
    if attributes:
        body["attributes"] = dict(attributes)
    return Call("POST", "/v1/queues", lambda status, d: (queue_of(d), status == 201), body)


def get_queue(name: str) -> Call[Queue]:
    """GET /v1/queues/{name}."""
    return Call("GET", queue_path(name), lambda _, d: queue_of(d))


def queue_stats(name: str) -> Call[QueueStats]:
    """GET /v1/queues/{name}, its exact counts."""
    return Call("GET", queue_path(name), lambda _, d: stats_of(d["stats"]))


def queue_with_stats(name: str) -> Call[tuple[Queue, QueueStats]]:
    """GET /v1/queues/{name}: the queue and its exact counts, in one request."""
    return Call("GET", queue_path(name), lambda _, d: (queue_of(d), stats_of(d["stats"])))


def list_queues(prefix: str, after: str | None, limit: int) -> Call[list[Queue]]:
    """GET /v1/queues, one page."""
    return Call("GET", "/v1/queues", lambda _, d: [queue_of(q) for q in d["queues"]],
                params=_page(prefix, after, limit))


def list_queues_with_stats(prefix: str, after: str | None, limit: int
                           ) -> Call[list[tuple[Queue, QueueStats]]]:
    """GET /v1/queues, one page, each queue with its counts."""
    return Call("GET", "/v1/queues",
                lambda _, d: [(queue_of(q), stats_of(q["stats"])) for q in d["queues"]],
                params=_page(prefix, after, limit))


def _page(prefix: str, after: str | None, limit: int) -> dict[str, str]:
    params = {"prefix": prefix, "limit": str(limit)}
    if after is not None:
        params["after"] = after
    return params


def update_queue(name: str, attributes: Mapping[str, Any]) -> Call[Queue]:
    """PATCH /v1/queues/{name}."""
    return Call("PATCH", queue_path(name), lambda _, d: queue_of(d),
                {"attributes": dict(attributes)})


def delete_queue(name: str) -> Call[None]:
    """DELETE /v1/queues/{name}."""
    return Call("DELETE", queue_path(name), lambda _, d: None, empty=True)


def purge_queue(name: str) -> Call[int]:
    """POST /v1/queues/{name}/purge."""
    return Call("POST", queue_path(name) + "/purge", lambda _, d: int(d["purged"]))


# message calls ----------------------------------------------------------------------
def send(queue: str, entries: Sequence[SendEntry]) -> Call[list[SendResult]]:
    """POST /v1/queues/{q}/messages."""
    return Call("POST", queue_path(queue) + "/messages",
                lambda _, d: [SendResult(m["id"], m.get("duplicate", False))
                              for m in d["messages"]],
                {"messages": [entry_json(e) for e in entries]})


def receive(queue: str, max_messages: int, visibility_timeout: int | None,
            wait_seconds: int | None, skip_groups: Sequence[str] = ()) -> Call[list[Message]]:
    """POST /v1/queues/{q}/messages/receive (long polls up to `wait_seconds`)."""
    body: dict[str, Any] = {"max_messages": max_messages}
    if skip_groups:
        body["skip_groups"] = list(skip_groups)
    if visibility_timeout is not None:
        body["visibility_timeout"] = visibility_timeout
    if wait_seconds is not None:
        body["wait_seconds"] = wait_seconds
    return Call("POST", queue_path(queue) + "/messages/receive",
                lambda _, d: [message_of(queue, m) for m in d["messages"]], body,
                extra_timeout=(wait_seconds or 0) + _POLL_MARGIN_SECONDS)


def delete(queue: str, receipt_handles: Sequence[str]) -> Call[list[EntryResult]]:
    """POST /v1/queues/{q}/messages/delete."""
    return Call("POST", queue_path(queue) + "/messages/delete",
                lambda _, d: [entry_of(r) for r in d["results"]],
                {"receipt_handles": list(receipt_handles)})


def change_visibility(queue: str, entries: Sequence[VisibilityEntry]
                      ) -> Call[list[EntryResult]]:
    """POST /v1/queues/{q}/messages/visibility."""
    return Call("POST", queue_path(queue) + "/messages/visibility",
                lambda _, d: [entry_of(r) for r in d["results"]],
                {"entries": [{"receipt_handle": e.receipt_handle,
                              "visibility_timeout": e.visibility_timeout} for e in entries]})


def peek(queue: str, limit: int, after: str | None) -> Call[list[PeekedMessage]]:
    """GET /v1/queues/{q}/messages: look without leasing, oldest first, paged by `after`."""
    params = {"limit": str(limit), **({"after": after} if after is not None else {})}
    return Call("GET", queue_path(queue) + "/messages",
                lambda _, d: [peeked_of(m) for m in d["messages"]], params=params)


def retry(queue: str, receipt_handle: str, delay_seconds: int, error: str | None,
          dead_letter: bool = False, snooze: bool = False) -> Call[EntryResult]:
    """POST /v1/queues/{q}/messages/retry."""
    body = {"receipt_handle": receipt_handle, "delay_seconds": delay_seconds,
            "error": error, "dead_letter": dead_letter}
    if snooze:
        body["snooze"] = True
    return Call("POST", queue_path(queue) + "/messages/retry", lambda _, d: entry_of(d),
                body)


# redrive calls ----------------------------------------------------------------------
def task_of(d: Mapping[str, Any]) -> MoveTask:
    """A move task from JSON."""
    return MoveTask(d["id"], d["source_queue"], d["destination_queue"], d["status"],
                    d["moved"], d["to_move"], d["max_per_second"], d["started_at"],
                    d["finished_at"], d.get("error"))


def start_redrive(queue: str, destination: str | None, max_per_second: int | None
                  ) -> Call[MoveTask]:
    """POST /v1/queues/{dlq}/redrive: the task, finished or (202) still running."""
    body = {k: v for k, v in (("destination", destination),
                              ("max_per_second", max_per_second)) if v is not None}
    return Call("POST", queue_path(queue) + "/redrive", lambda _, d: task_of(d), body)


def get_move_task(task_id: str) -> Call[MoveTask]:
    """GET /v1/tasks/{id}."""
    return Call("GET", f"/v1/tasks/{quote(task_id, safe='')}", lambda _, d: task_of(d))
