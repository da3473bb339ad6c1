"""The delivery view in a real headless Chromium against `conveyor serve` (SQLite): people
notified through the HTTP API, their email delivered by a worker into a real aiosmtpd
server on loopback (a 451 then 250, a 550 5.1.1, one held for quiet hours); then the
Deliveries page finds them by recipient and by id, shows each timeline with the server's
replies, and draws the chart. Screenshots in test-output/dashboard/deliveries-*.png."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.demo.loopback import SmtpSink
from conveyor.http.auth import Need, required
from conveyor.notify import Notifier, SmtpChannel
from conveyor.storage.factory import storage_from_url
from tests.dashboard.browser import screenshot
from tests.http.server import ServerProcess, start_server
from tests.notify.helpers import TEMPLATES, deliver_until, smtp_server

HOSTILE = '<img src=x onerror="window.__pwned=1">'
DRAWN = "() => document.querySelector('#chart-deliveries').dataset.drawn > 0"
"""A function, not an expression: Playwright evaluates a polled expression with eval,
which the pages' Content-Security-Policy forbids."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """`conveyor serve` on a fresh SQLite file, and the file's URL (for a worker)."""
    directory = Path(tmp_path_factory.mktemp("deliveries"))
    url = f"sqlite:///{directory}/c.db"
    # The worker's templates, as files the server knows too (it refuses other names).
    folder = directory / "templates"
    folder.mkdir()
    for name, source in TEMPLATES.items():
        (folder / name).write_text(source)
    process = start_server(directory, ["--database", url, "--no-sqs",
                                       "--templates", str(folder)])
    yield process, url
    assert process.stop() == 0, process.logs()


def _deliver(url: str, sink: SmtpSink) -> None:
    """A delivery worker in this process on the server's file, until ann's mail is in."""
    async def run() -> None:
        broker = Broker(storage_from_url(url), sweep_interval=None)
        await broker.start()
        try:
            with smtp_server(sink) as port:
                notifier = Notifier(broker, channels={"email": SmtpChannel(
                    "127.0.0.1", port, sender="Shop <news@shop.example>")},
                    templates=TEMPLATES)
                await deliver_until(notifier, lambda: sink.received["ann@example.com"] >= 1
                                    and sum(len(v) for v in sink.faults.values()) == 0,
                                    timeout=60)
        finally:
            await broker.close()
    # In a thread of its own: Playwright's sync API keeps a loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def _new_page(browser: Any, width: int = 1280, height: int = 900) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": width, "height": height})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page, problems


def test_find_by_recipient_and_id_timeline_and_chart(browser: Any, served: tuple[
        ServerProcess, str], tmp_path: Path) -> None:
    server, url = served
    with httpx.Client(base_url=server.url, timeout=30) as api:
        assert api.put("/v1/recipients/ann", json={"addresses": {"email": [
            "ann@example.com", "ann.old@example.com"]}}).status_code == 200
        # bob is inside quiet hours whatever the time: held
        assert api.put("/v1/recipients/bob", json={"timezone": "UTC", "quiet_hours": {
            "start": "00:00", "end": "23:59"}, "addresses": {"email": ["bob@example.com"]}}
        ).status_code == 200
        for who in ("ann", "bob"):
            answer = api.post(f"/v1/recipients/{who}/notify", json={
                "category": "orders", "template": "ping", "data": {"n": 7}})
            assert answer.status_code == 202, answer.text
        sink = SmtpSink(faults={"ann@example.com": ["451 4.3.0 try again later"],
                                "ann.old@example.com": ["550 5.1.1 no such user"]})
        _deliver(url, sink)
        listed = {n["recipient"]: n for n in api.get(
            "/v1/notifications", params={"recipient": "ann"}).json()["notifications"]}
        sent_id = listed["ann@example.com"]["delivery_id"]
        failed_id = listed["ann.old@example.com"]["delivery_id"]
        doc = api.get(f"/v1/notifications/{sent_id}").json()
        assert [(e["state"], e["attempt"]) for e in doc["timeline"]] == [
            ("queued", 0), ("sending", 1), ("retrying", 1), ("sending", 2), ("sent", 2)]
        series = api.get("/v1/notifications/series", params={"bucket": 10,
                                                             "minutes": 20}).json()
        assert series["totals"]["email"]["sent"] == 1
        assert series["totals"]["email"]["held"] == 1
        assert api.get("/v1/notifications/series", params={"bucket": 7}).status_code == 422

    page, problems = _new_page(browser)
    page.goto(server.url + "/ui/deliveries")
    page.fill("#search input[name=q]", "ann")
    page.click("#search button")
    page.wait_for_selector("#notifications")
    states = dict(zip(page.locator("#notifications td.mono:nth-child(3)").all_inner_texts(),
                      page.locator("#notifications .state").all_inner_texts()))
    assert states == {"ann@example.com": "sent", "ann.old@example.com": "failed"}
    page.wait_for_function(DRAWN,
                           timeout=15_000)
    screenshot(page, tmp_path, "deliveries-search")

    page.click(f'tr[data-id="{sent_id}"] a')
    page.wait_for_selector("#timeline")
    rows = page.locator("#timeline tbody tr")
    assert [r.get_attribute("data-state") for r in rows.all()] == [
        "queued", "sending", "retrying", "sending", "sent"]
    text = page.locator("#timeline").inner_text()
    assert "451 4.3.0 try again later" in text and "provider id" in text
    screenshot(page, tmp_path, "deliveries-timeline")

    # By id: straight to the notification's page; the bounce shows the server's reply.
    page.goto(server.url + "/ui/deliveries")
    page.fill("#search input[name=q]", failed_id)
    page.click("#search button")
    page.wait_for_selector("#timeline")
    assert "550 5.1.1 no such user" in page.locator("#timeline").inner_text()
    assert page.locator("#delivery-id .state").inner_text() == "failed"

    # The chart by 10 s for email, and the counts now (bob's held one among them).
    page.goto(server.url + "/ui/deliveries?bucket=10&channel=email")
    page.wait_for_function(DRAWN,
                           timeout=15_000)
    held = page.locator('#counts tr[data-channel="email"] td').all_inner_texts()
    assert held[0] == "email" and held[2] == "1"  # queued, held, ... columns
    screenshot(page, tmp_path, "deliveries-chart")

    # Whatever is typed is shown as text; an unknown id says so.
    page.goto(server.url + "/ui/deliveries")
    page.fill("#search input[name=q]", HOSTILE)
    page.click("#search button")
    page.wait_for_selector("[role=alert]")  # not a recipient id: said so, shown as text
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.goto(server.url + "/ui/deliveries?q=nobody-at-all")
    assert "nobody-at-all" in page.locator("#nothing").inner_text()
    missing = page.goto(server.url + "/ui/deliveries/no-such-id")
    assert missing is not None and missing.status == 404
    assert "No notification no-such-id" in page.locator("h1").inner_text()
    assert problems == ["Failed to load resource: the server responded with a status of "
                        "404 (Not Found)"]  # the page's own status, as the browser says
    page.close()

    narrow, problems = _new_page(browser, width=360, height=740)
    narrow.goto(server.url + f"/ui/deliveries/{sent_id}")
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(narrow, tmp_path, "deliveries-timeline-narrow")
    assert problems == []
    narrow.close()


def test_the_pages_need_what_the_api_needs() -> None:
    for path in ("/ui/deliveries", "/ui/deliveries/abc", "/v1/notifications/series"):
        assert required("GET", path) == Need("receive", "notify-*"), path
    assert required("GET", "/ui/workers") == Need("manage")
