"""A dead-letter queue's page lists the messages a worker copied there (`<queue>-dlq`,
naming their source in the `conveyor-source-queue` attribute), whatever their body: plain
JSON or text that was never a conveyor job, with a preview, the source, the error and the
per-message Redrive and Delete buttons. Without a browser on both backends, and in a real
headless Chromium (screenshot `dlq-copies*.png`, see tests/dashboard/browser.py)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.http.app import create_app
from conveyor.models import Body, BodyKind, MessageAttribute, SendEntry
from tests.conftest import OpenBroker
from tests.dashboard.browser import screenshot
from tests.dashboard.test_browser import _new_page
from tests.http.server import ServerProcess

BODIES = [('{"to": "ana@example.com", "subject": "hi"}', BodyKind.JSON),
          ("plain text, <b>not</b> a job", BodyKind.TEXT),
          ('{"task": "send", "args": [1], "kwargs": {}}', BodyKind.JSON)]


def _copy(body: str, kind: BodyKind, source: str) -> SendEntry:
    """The message as a worker copies it (conveyor.worker.runner `_dead_letter`)."""
    return SendEntry(Body(body, kind), attributes={
        "conveyor-error": MessageAttribute("String", "ValueError: not a conveyor job"),
        "conveyor-source-queue": MessageAttribute("String", source)})


def _copy_json(body: str, kind: BodyKind, source: str) -> dict[str, Any]:
    return {"body": body if kind == BodyKind.TEXT else json.loads(body),
            "attributes": {
                "conveyor-error": {"type": "String", "value": "ValueError: not a conveyor job"},
                "conveyor-source-queue": {"type": "String", "value": source}}}


@pytest.fixture
async def ui(open_broker: OpenBroker) -> AsyncIterator[tuple[httpx.AsyncClient, Broker]]:
    broker = await open_broker(stats_cache_seconds=0)
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        await http.get("/ui/jobs")  # the session's CSRF cookie
        yield http, broker


async def test_copies_are_listed_and_act_one_by_one(
        ui: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = ui
    token = http.cookies["conveyor_csrf"]
    await broker.create_queue("emails")
    await broker.create_queue("emails-dlq")
    sent = await broker.send("emails-dlq", [_copy(b, k, "emails") for b, k in BODIES])
    page = await http.get("/ui/queues/emails-dlq")
    assert page.status_code == 200
    listed = re.findall(r'<tr data-message="([^"]+)">', page.text)
    assert listed == [s.id for s in sent]
    assert "None right now" not in page.text and "from emails" in page.text
    assert "ana@example.com" in page.text and "&lt;b&gt;not&lt;/b&gt; a job" in page.text
    assert page.text.count("ValueError: not a conveyor job") == 3
    for s in sent:
        assert f'action="/ui/queues/emails-dlq/messages/{s.id}/redrive"' in page.text
        assert f'action="/ui/queues/emails-dlq/messages/{s.id}/delete"' in page.text
    moved = await http.post(f"/ui/queues/emails-dlq/messages/{sent[1].id}/redrive",
                            data={"csrf_token": token})
    assert "notice=Moved+message" in moved.headers["location"]
    assert [m.body.text for m in await broker.peek("emails")] == [BODIES[1][0]]
    gone = await http.post(f"/ui/queues/emails-dlq/messages/{sent[0].id}/delete",
                           data={"csrf_token": token})
    assert "notice=Deleted+message" in gone.headers["location"]
    assert [m.id for m in await broker.peek("emails-dlq")] == [sent[2].id]


def test_copies_in_a_browser(browser: Any, server: ServerProcess, api: httpx.Client,
                             tmp_path: Path) -> None:
    api.post("/v1/queues", json={"name": "copies"})
    api.post("/v1/queues", json={"name": "copies-dlq"})
    sent = api.post("/v1/queues/copies-dlq/messages", json={"messages": [
        _copy_json(b, k, "copies") for b, k in BODIES]}).json()["messages"]
    ids = [m["id"] for m in sent]
    page, problems = _new_page(browser)
    page.goto(server.url + "/ui/queues/copies-dlq")
    rows = page.locator("#dead-letters tbody tr")
    assert rows.evaluate_all("r => r.map(x => x.dataset.message)") == ids
    assert "plain text, <b>not</b> a job" in rows.nth(1).inner_text()
    assert rows.nth(0).locator("td").nth(1).inner_text() == "copies"
    screenshot(page, tmp_path, "dlq-copies")
    page.locator(f'tr[data-message="{ids[0]}"] button', has_text="Redrive").click()
    page.wait_for_selector(".notice")
    assert f"Moved message {ids[0]} back to copies" in page.locator(".notice").inner_text()
    page.locator(f'tr[data-message="{ids[1]}"] button', has_text="Delete").click()
    page.wait_for_selector(f'.notice:has-text("Deleted message {ids[1]}")')
    remaining = page.locator("#dead-letters tbody tr").evaluate_all(
        "r => r.map(x => x.dataset.message)")
    assert remaining == [ids[2]]
    assert api.get("/v1/queues/copies").json()["stats"]["visible"] == 1
    screenshot(page, tmp_path, "dlq-copies-after")
    assert problems == []
    page.close()
