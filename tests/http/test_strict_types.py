"""JSON `true` is not `1`, and `"5"` is not `5`, on every request model of the native API
(pydantic strict): a wrong type is a 422 `invalid_input` naming the field in one sentence,
and nothing is applied. One case per route family, on both backends."""

from __future__ import annotations

from typing import Any

import httpx

from conveyor.broker.broker import Broker
from tests.http.helpers import assert_error

# (method, path, body, field): each body is valid but for one value of the wrong type.
WRONG: list[tuple[str, str, dict[str, Any], str]] = [
    ("post", "/v1/queues", {"name": "q1", "attributes": {"visibility_timeout": True}},
     "visibility_timeout"),
    ("post", "/v1/queues", {"name": "q2", "attributes": {"retention_seconds": "600"}},
     "retention_seconds"),
    ("post", "/v1/queues", {"name": "q3", "attributes": {"paused": 1}}, "paused"),
    ("patch", "/v1/queues/base", {"attributes": {"max_receive_count": True,
                                                 "dead_letter_queue": "base-dlq"}},
     "max_receive_count"),
    ("post", "/v1/queues/base/messages/receive", {"max_messages": True}, "max_messages"),
    ("post", "/v1/queues/base/messages/receive", {"wait_seconds": "2"}, "wait_seconds"),
    ("post", "/v1/queues/base/messages/retry", {"receipt_handle": "x", "delay_seconds": True},
     "delay_seconds"),
    ("post", "/v1/queues/base/redrive", {"max_per_second": True}, "max_per_second"),
    ("post", "/v1/limits/take", {"key": "k", "rate": True, "per": 1}, "rate"),
    ("post", "/v1/limits/take", {"key": "k", "rate": 5, "per": True}, "per"),
    ("post", "/v1/limits/take", {"key": "k", "rate": 5, "per": 1, "want": "2"}, "want"),
    ("post", "/v1/limits/acquire", {"key": "k", "limit": True, "holder": "h"}, "limit"),
    ("post", "/v1/limits/release", {"key": "k", "holder": "h", "count": True}, "count"),
    ("post", "/v1/limits/renew", {"key": "k", "holder": "h", "lease_seconds": True},
     "lease_seconds"),
    ("post", "/v1/limits/penalize", {"key": "k", "seconds": True}, "seconds"),
    ("post", "/v1/cron/claim", {"schedule": "s", "tick_at": True}, "tick_at"),
    ("post", "/v1/cron/claim", {"schedule": "s", "tick_at": "1000"}, "tick_at"),
    ("put", "/v1/jobs/j1", {"status": "queued", "queue": "q", "task": "t", "attempts": True},
     "attempts"),
    ("put", "/v1/jobs/j2", {"status": "queued", "queue": "q", "task": "t",
                            "keep_seconds": "60"}, "keep_seconds"),
    ("post", "/v1/jobs/cancel", {"limit": True}, "limit"),
    ("put", "/v1/recipients/r1", {"preferences": {"news": {"email": 1}}}, "email"),
    ("post", "/v1/recipients/r1/notify", {"category": "c", "template": "t", "critical": 1},
     "critical"),
    ("put", "/v1/workers/w1", {"host": "h", "pid": True, "queues": [], "concurrency": 1,
                               "running": 0, "ttl_seconds": 30}, "pid"),
    ("put", "/v1/templates/t1", {"locales": {"en": {"text": "x"}}, "updated_at": True},
     "updated_at"),
]


async def test_a_wrong_type_is_refused_and_nothing_applied(http: httpx.AsyncClient,
                                                          broker: Broker) -> None:
    # One database per backend for every family (a fresh one per case costs a second).
    for method, path, body, field in WRONG:
        got = await http.request(method, path, json=body)
        error = assert_error(got, 422, "invalid_input", field=field)
        assert "should be a valid" in error["message"], (method, path, error)
    names = {q.name for q in await broker.list_queues()}
    assert names == {"base"}  # no queue made, none changed
    base = await broker.get_queue("base")
    assert base.attributes.max_receive_count is None
    assert await broker.jobs.status_get("j1") is None
    assert await broker.jobs.status_get("j2") is None
    assert (await http.get("/v1/workers")).json()["workers"] == []
    # the refused tick was not claimed: the first real claim of it gets it
    claim = await http.post("/v1/cron/claim", json={"schedule": "s", "tick_at": 1})
    assert claim.json() == {"claimed": True}
    # and the right types still work
    made = await http.post("/v1/queues", json={"name": "q1",
                                               "attributes": {"visibility_timeout": 5}})
    assert made.status_code == 201 and made.json()["attributes"]["visibility_timeout"] == 5
    take = await http.post("/v1/limits/take", json={"key": "k", "rate": 5, "per": 1.5})
    assert take.status_code == 200 and take.json()["granted"] == 1


async def test_a_missing_body_names_the_body(http: httpx.AsyncClient, broker: Broker) -> None:
    """It answered `"Field required."` and no field; nothing is applied."""
    for method, path in [("post", "/v1/queues"), ("post", "/v1/suppressions"),
                         ("put", "/v1/recipients/ann"), ("post", "/v1/limits/take")]:
        for headers in ({}, {"content-type": "application/json"}):
            error = assert_error(await http.request(method, path, headers=headers), 422,
                                 "missing_parameter", field="body")
            assert error["message"] == "A JSON body is required.", (path, error)
    assert [q.name for q in await broker.list_queues()] == ["base"]
    assert await broker.recipients.get("ann") is None
