"""The dashboard in a real headless Chromium: a queue appears live, a test message is sent
(and shown escaped), a dead letter is redriven; screenshots wide and narrow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.dashboard.browser import screenshot
from tests.http.server import ServerProcess

HOSTILE = '<img src=x onerror="window.__pwned=1">&amp; "quoted"'


def _new_page(browser: Any, width: int = 1280, height: int = 900) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": width, "height": height})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    return page, problems


def test_queue_appears_send_and_redrive(browser: Any, server: ServerProcess,
                                        api: httpx.Client, tmp_path: Path) -> None:
    page, problems = _new_page(browser)
    page.goto(server.url + "/")
    page.wait_for_selector("#live.on", timeout=10_000)
    page.evaluate("window.__sameDocument = true")

    # A queue created elsewhere appears without a reload.
    assert api.post("/v1/queues", json={"name": "b-dead"}).status_code == 201
    assert api.post("/v1/queues", json={"name": "a-orders", "attributes": {
        "dead_letter_queue": "b-dead", "max_receive_count": 1}}).status_code == 201
    api.post("/v1/queues/a-orders/messages", json={"messages": [{"body": "one"}]})
    row = page.locator('tr[data-name="a-orders"]')
    row.wait_for(timeout=10_000)
    # Functions, not expressions: Playwright polls an expression with eval, which the
    # pages' Content-Security-Policy forbids (it fails whenever the first look is false).
    page.wait_for_function(
        "() => document.querySelector('tr[data-name=\"a-orders\"] td[data-col=visible]')"
        ".textContent === '1'", timeout=10_000)
    assert page.evaluate("window.__sameDocument") is True
    names = page.locator("#queues tbody tr").evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert names == ["a-orders", "b-dead"]
    screenshot(page, tmp_path, "index")

    # Send a test message from the queue page; the body is shown as text, not markup.
    row.locator("a").click()
    page.wait_for_selector("#queue-name")
    page.fill("#send textarea[name=body]", HOSTILE)
    page.click("#send button[type=submit]")
    page.wait_for_selector(".notice")
    assert page.locator(".notice").inner_text().startswith("Sent message ")
    bodies = page.locator("#peek pre.body").all_inner_texts()
    assert HOSTILE in bodies
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#peek img").count() == 0
    page.wait_for_function("() => window.Chart && document.querySelector('#chart-depth')"
                           ".getAttribute('width') !== null", timeout=10_000)
    screenshot(page, tmp_path, "queue")

    # Dead-letter a message (received once, retried with an error, received again).
    api.post("/v1/queues/a-orders/purge")
    api.post("/v1/queues/a-orders/messages", json={"messages": [{"body": "will fail"}]})
    [m] = api.post("/v1/queues/a-orders/messages/receive", json={}).json()["messages"]
    retried = api.post("/v1/queues/a-orders/messages/retry", json={
        "receipt_handle": m["receipt_handle"], "delay_seconds": 0,
        "error": "SMTP 550: <mailbox> unavailable"})
    assert retried.json()["status"] == "ok"
    assert api.post("/v1/queues/a-orders/messages/receive", json={}).json()["messages"] == []

    page.goto(server.url + "/ui/queues/b-dead")
    dead = page.locator("#dead-letters")
    assert "SMTP 550: <mailbox> unavailable" in dead.inner_text()
    screenshot(page, tmp_path, "dead-letters")
    dead.locator("button[value=redrive]").click()  # redrive all (each row has its own)
    page.wait_for_selector(".notice")
    assert "Redrove 1 messages" in page.locator(".notice").inner_text()
    stats = api.get("/v1/queues/a-orders").json()["stats"]
    assert stats["visible"] == 1 and stats["dead_letters"] == 0

    # Pause, then resume, from the page.
    page.goto(server.url + "/ui/queues/a-orders")
    page.click("button[value=pause]")
    page.wait_for_selector("h1 .tag")
    assert api.get("/v1/queues/a-orders").json()["attributes"]["paused"] is True
    page.click("button[value=resume]")
    page.wait_for_selector("button[value=pause]")
    assert api.get("/v1/queues/a-orders").json()["attributes"]["paused"] is False
    assert problems == []
    page.close()


def test_narrow_window(browser: Any, server: ServerProcess, api: httpx.Client,
                       tmp_path: Path) -> None:
    api.post("/v1/queues", json={"name": "narrow-queue-with-a-rather-long-name_0123456789"})
    page, problems = _new_page(browser, width=360, height=740)
    page.goto(server.url + "/")
    page.wait_for_selector('tr[data-name^="narrow-queue"]')
    # Nothing but the table's own scroller is wider than the window.
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 360, overflow
    screenshot(page, tmp_path, "index-narrow")
    page.goto(server.url + "/ui/queues/narrow-queue-with-a-rather-long-name_0123456789")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(page, tmp_path, "queue-narrow")
    assert problems == []
    page.close()


def test_csrf_refuses_posts_without_the_session_token(server: ServerProcess,
                                                      api: httpx.Client) -> None:
    api.post("/v1/queues", json={"name": "csrf-target"})
    api.post("/v1/queues/csrf-target/messages", json={"messages": [{"body": "keep"}]})
    page = api.get("/")
    token = page.cookies["conveyor_csrf"]
    assert f'value="{token}"' in page.text
    # No token, a wrong one, the cookie alone, another origin: all refused.
    for cookies, form, headers in (
            ({}, {}, {}),
            ({"conveyor_csrf": token}, {}, {}),
            ({"conveyor_csrf": token}, {"csrf_token": "x" * 43}, {}),
            ({}, {"csrf_token": token}, {}),
            ({"conveyor_csrf": token}, {"csrf_token": token},
             {"origin": "http://evil.example"})):
        with httpx.Client(base_url=server.url, cookies=cookies) as other:
            answer = other.post("/ui/queues/csrf-target/purge", data=form, headers=headers)
        assert answer.status_code == 403, (cookies, form, headers)
    assert api.get("/v1/queues/csrf-target").json()["stats"]["visible"] == 1
    with httpx.Client(base_url=server.url, cookies={"conveyor_csrf": token}) as same:
        answer = same.post("/ui/queues/csrf-target/purge", data={"csrf_token": token})
    assert answer.status_code == 303
    assert "Purged" in answer.headers["location"]
    assert api.get("/v1/queues/csrf-target").json()["stats"]["visible"] == 0


def test_live_feed_over_a_socket(server: ServerProcess, api: httpx.Client) -> None:
    api.post("/v1/queues", json={"name": "feed-q"})
    api.post("/v1/queues/feed-q/messages", json={"messages": [{"body": "x"}] * 2})
    with httpx.Client(base_url=server.url, timeout=10) as http, \
            http.stream("GET", "/ui/events") as feed:
        assert feed.headers["content-type"].startswith("text/event-stream")
        for line in feed.iter_lines():
            if line.startswith("data: "):
                rows = {r[0]: r for r in json.loads(line[6:])["rows"]}
                if rows.get("feed-q", [None, 0])[1] == 2:
                    break
    assert rows["feed-q"][1:5] == [2, 0, 0, 0]
    with httpx.Client(base_url=server.url, timeout=10) as http, \
            http.stream("GET", "/ui/events", params={"queue": "feed-q"}) as feed:
        for line in feed.iter_lines():
            if line.startswith("data: "):
                point = json.loads(line[6:])
                break
    assert point["queue"] == "feed-q" and point["point"]["visible"] == 2


def test_workers_page(browser: Any, server: ServerProcess, api: httpx.Client,
                      tmp_path: Path) -> None:
    """A worker's heartbeat (as a worker sends it) shows on the Workers page, reached from
    the navigation: its queues, running jobs, schedule with its next run, task counts."""
    buckets = [0] * 15
    buckets[3] = 4
    beat = {"host": "box-1", "pid": 4321, "queues": ["emails", "default"], "concurrency": 8,
            "running": 3, "ttl_seconds": 300,
            "schedules": [{"name": "digest|every 60000 ms", "task": "digest",
                           "queue": "default", "schedule": "every 60 s",
                           "next_run_at": 1_900_000_020_000}],
            "counts": [{"queue": "emails", "task": "send_email", "runs": 4, "failures": 1,
                        "retries": 1, "seconds": 0.2, "buckets": buckets}]}
    assert api.put("/v1/workers/w-browser", json=beat).status_code == 204
    page, problems = _new_page(browser)
    page.goto(server.url + "/")
    assert page.locator("#section-workers").inner_text().count("live workers") == 1
    page.click("nav a[href='/ui/workers']")
    row = page.locator('#workers tr[data-id="w-browser"]')
    row.wait_for(timeout=10_000)
    cells = row.locator("td").all_inner_texts()
    assert cells[1:5] == ["box-1", "4321", "emails, default", "3 / 8"]
    assert cells[6].endswith(" ago")
    assert "every 60 s" in page.locator("#schedules").inner_text()
    assert "2030-03-17 17:47:00.000Z" in page.locator("#schedules").inner_text()
    task = page.locator('#tasks tr[data-task="send_email"] td').all_inner_texts()
    assert task[2:6] == ["4", "1", "1", "0.050 s"]
    screenshot(page, tmp_path, "workers")
    # The page refreshes itself: a worker that stops leaves it without a reload.
    page.evaluate("window.__sameDocument = true")
    assert api.delete("/v1/workers/w-browser").status_code == 204
    page.wait_for_selector("#no-workers", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#live.on").count() == 1
    assert problems == []
    page.close()
