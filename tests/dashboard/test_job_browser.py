"""The job explorer and the dead-letter page's per-message actions in a real headless
Chromium against `conveyor serve`: the list, its filters, a job page with its attempts and
traceback, retry and delete (one and in bulk), redrive and delete of one dead letter.

Screenshots (`explorer-*.png`) are kept in test-output/dashboard/ at the repository's
root (git-ignored; `tests/dashboard/browser.py`) and in each test's tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.dashboard.browser import screenshot
from tests.dashboard.test_browser import _new_page
from tests.http.server import ServerProcess

HOSTILE = '<img src=x onerror="window.__pwned=1">'
TRACEBACK = f"""Traceback (most recent call last):
  File "/app/tasks.py", line 12, in send_invoice
    smtp.send(message)
  File "/app/mail.py", line 40, in send
    raise MailboxUnavailable(reply)
mail.MailboxUnavailable: 550 <{HOSTILE}> mailbox unavailable"""


def _dead_job(api: httpx.Client, key: str, queue: str = "work") -> str:
    """A tracked job dead the worker's way: its message in work-dlq, its status dead with
    two attempts reported (the second with a traceback)."""
    api.post("/v1/queues", json={"name": f"{queue}-dlq"})
    api.post("/v1/queues", json={"name": queue, "attributes": {
        "dead_letter_queue": f"{queue}-dlq", "max_receive_count": 5}})
    body = {"task": "tasks.send_invoice", "args": [42], "kwargs": {"to": HOSTILE}}
    [sent] = api.post(f"/v1/queues/{queue}/messages", json={"messages": [
        {"body": body}]}).json()["messages"]
    job_id: str = sent["id"]
    [m] = api.post(f"/v1/queues/{queue}/messages/receive", json={}).json()["messages"]
    api.post(f"/v1/queues/{queue}/messages/retry", json={
        "receipt_handle": m["receipt_handle"], "delay_seconds": 0, "error": "550",
        "dead_letter": True})
    common = {"queue": queue, "task": "tasks.send_invoice", "key": key, "worker": "host-a"}
    queued = {**common, "job_id": job_id, "status": "queued", "args": {
        "args": [42], "kwargs": {"to": HOSTILE}}}
    assert api.post("/v1/jobs/status", json={"jobs": [queued]}).status_code == 204
    now = api.get(f"/v1/jobs/{job_id}").json()["created_at"] + 10_000  # the runs after
    statuses = [
        {**common, "job_id": job_id, "status": "retrying", "attempts": 1,
         "error": "TimeoutError: SMTP server did not answer", "started_at": now - 9000,
         "ended_at": now - 8000, "traceback": "Traceback (most recent call last):\n"
         "TimeoutError: SMTP server did not answer"},
        {**common, "job_id": job_id, "status": "dead", "attempts": 2,
         "error": f"MailboxUnavailable: 550 <{HOSTILE}> mailbox unavailable",
         "started_at": now - 3000, "ended_at": now - 2500, "traceback": TRACEBACK}]
    for status in statuses:
        assert api.post("/v1/jobs/status", json={"jobs": [status]}).status_code == 204
    return job_id


# Jobs' ids are UUIDs (a status report under any other id is refused).
OK = [f"01900000-0000-7000-8000-{i:012d}" for i in range(6)]


def _seed(api: httpx.Client) -> str:
    for i in range(6):
        api.post("/v1/jobs/status", json={"jobs": [{
            "job_id": OK[i], "status": "succeeded", "queue": "reports",
            "task": "tasks.build_report", "attempts": 1, "key": f"customer-{i % 2}",
            "result": {"rows": i * 100}, "args": {"args": [i], "kwargs": {}}}]})
    return _dead_job(api, "customer-1")


def test_list_filter_job_page_retry_delete(browser: Any, server: ServerProcess,
                                           api: httpx.Client, tmp_path: Path) -> None:
    dead = _seed(api)
    page, problems = _new_page(browser)
    page.goto(server.url + "/ui/jobs")
    rows = page.locator("#jobs tbody tr")
    assert rows.count() == 7
    assert rows.first.get_attribute("data-job") == dead  # newest update first
    assert page.locator('#state-counts a[data-state="dead"] b').inner_text() == "1"
    screenshot(page, tmp_path, "explorer-jobs")

    # Filter by state and key from the form.
    page.select_option("#job-filter select[name=state]", "succeeded")
    page.fill("#job-filter input[name=key]", "customer-1")
    page.click("#job-filter button[type=submit]")
    page.wait_for_url("**/ui/jobs?*state=succeeded*")
    found = page.locator("#jobs tbody tr").evaluate_all("r => r.map(x => x.dataset.job)")
    assert found == [OK[5], OK[3], OK[1]]
    assert page.input_value("#job-filter input[name=key]") == "customer-1"
    screenshot(page, tmp_path, "explorer-jobs-filtered")

    # The dead job's page: arguments, both attempts, the last traceback open, escaped.
    page.goto(server.url + "/ui/jobs?state=dead")
    page.click(f'#jobs a[href="/ui/jobs/{dead}"]')
    page.wait_for_selector("#job-state")
    assert page.locator("#job-state").inner_text() == "dead"
    assert "<img src=x onerror=" in page.locator("#job-args pre").inner_text()
    attempts = page.locator("#job-attempts tr.attempt")
    assert attempts.evaluate_all("r => r.map(x => x.dataset.outcome)") == ["retrying", "dead"]
    errors = page.locator("#job-attempts tr.attempt-error")
    last = errors.nth(1).locator("pre.traceback")
    assert last.is_visible() and "mail.MailboxUnavailable" in last.inner_text()
    assert "MailboxUnavailable: 550" in errors.nth(1).inner_text()
    assert not errors.nth(0).locator("pre.traceback").is_visible()  # folded
    errors.nth(0).locator("summary").click()
    assert errors.nth(0).locator("pre.traceback").is_visible()
    events = page.locator("#job-timeline li").all_inner_texts()
    assert "created" in events[0] and "dead" in events[-1]
    assert page.evaluate("window.__pwned") is None and page.locator("main img").count() == 0
    screenshot(page, tmp_path, "explorer-job")

    # Retry it: its message leaves the dead-letter queue, its state is queued again.
    page.click("#job-actions button[value=retry]")
    page.wait_for_selector(".notice")
    assert page.locator(".notice").inner_text().startswith("Job sent again")
    assert page.locator("#job-state").inner_text() == "queued"
    assert page.locator("#job-attempts tr.attempt").count() == 2  # the history stays
    assert api.get("/v1/queues/work").json()["stats"]["visible"] == 1
    assert page.locator("#job-actions button[value=cancel]").is_visible()
    screenshot(page, tmp_path, "explorer-job-retried")

    # Cancel it from its page (queued again after the retry).
    page.click("#job-actions button[value=cancel]")  # the confirm dialog is accepted
    page.wait_for_selector('.notice:has-text("Cancel requested")')
    assert page.locator("#job-state").inner_text() == "cancelled"
    assert page.locator("#job-actions button[value=cancel]").count() == 0

    # Delete one ended job from its page, then the rest of a filter in bulk.
    page.goto(server.url + f"/ui/jobs/{OK[0]}")
    page.click("#job-actions button[value=delete]")  # the confirm dialog is accepted
    page.wait_for_url("**/ui/jobs?notice=*")
    assert f"Deleted job {OK[0]}" in page.locator(".notice").inner_text()
    page.goto(server.url + "/ui/jobs?state=succeeded&key=customer-1")
    page.click("#bulk-actions button[value=delete]")
    page.wait_for_selector(".notice")
    assert "Deleted 3 ended jobs" in page.locator(".notice").inner_text()
    left = api.get("/v1/jobs", params={"state": "succeeded"}).json()["jobs"]
    assert sorted(j["job_id"] for j in left) == [OK[2], OK[4]]
    # With no filter the bulk form sends the explicit all (the confirm is the consent).
    page.goto(server.url + "/ui/jobs")
    page.click("#bulk-actions button[value=delete]")
    page.wait_for_selector(".notice")
    assert "Deleted 3 ended jobs" in page.locator(".notice").inner_text()
    assert api.get("/v1/jobs").json()["jobs"] == []
    assert problems == []
    page.close()


def test_dead_letter_page_per_message_actions(browser: Any, server: ServerProcess,
                                              api: httpx.Client, tmp_path: Path) -> None:
    api.post("/v1/queues", json={"name": "mail-dlq"})
    api.post("/v1/queues", json={"name": "mail", "attributes": {
        "dead_letter_queue": "mail-dlq", "max_receive_count": 1}})
    api.post("/v1/queues/mail/messages", json={"messages": [
        {"body": f"letter {i}"} for i in range(3)]})
    for m in api.post("/v1/queues/mail/messages/receive", json={
            "max_messages": 10}).json()["messages"]:
        api.post("/v1/queues/mail/messages/retry", json={
            "receipt_handle": m["receipt_handle"], "delay_seconds": 0,
            "error": f"bounce for {m['body']}", "dead_letter": True})
    page, problems = _new_page(browser)
    page.goto(server.url + "/ui/queues/mail-dlq")
    rows = page.locator("#dead-letters tbody tr")
    assert rows.count() == 3
    ids = rows.evaluate_all("r => r.map(x => x.dataset.message)")
    screenshot(page, tmp_path, "explorer-dlq")

    page.locator(f'tr[data-message="{ids[0]}"] button', has_text="Redrive").click()
    page.wait_for_selector(".notice")
    assert f"Moved message {ids[0]} back to mail" in page.locator(".notice").inner_text()
    page.locator(f'tr[data-message="{ids[1]}"] button', has_text="Delete").click()
    page.wait_for_selector(f'.notice:has-text("Deleted message {ids[1]}")')
    remaining = page.locator("#dead-letters tbody tr").evaluate_all(
        "r => r.map(x => x.dataset.message)")
    assert remaining == [ids[2]]
    assert api.get("/v1/queues/mail").json()["stats"]["visible"] == 1
    screenshot(page, tmp_path, "explorer-dlq-after")
    assert problems == []
    page.close()


def test_job_page_in_a_narrow_window(browser: Any, server: ServerProcess,
                                     api: httpx.Client, tmp_path: Path) -> None:
    dead = _dead_job(api, "customer-narrow", "narrow")
    page, problems = _new_page(browser, width=360, height=740)
    page.goto(server.url + f"/ui/jobs/{dead}")
    page.wait_for_selector("#job-state")
    screenshot(page, tmp_path, "explorer-job-narrow")
    page.goto(server.url + "/ui/jobs")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(page, tmp_path, "explorer-jobs-narrow")
    assert problems == []
    page.close()


def test_job_page_with_its_flow_tree(browser: Any, server: ServerProcess,
                                     api: httpx.Client, tmp_path: Path) -> None:
    api.post("/v1/queues", json={"name": "pages"})
    made = api.post("/v1/flows", json={"steps": [
        {"task": "tasks.fetch", "queue": "pages", "args": [p]} for p in (1, 2, 3)] + [
        {"task": "tasks.total", "queue": "pages", "after": [0, 1, 2],
         "results": "list"}]})
    assert made.status_code == 201, made.text
    flow = made.json()
    ids = [n["job_id"] for n in flow["nodes"]]
    api.post("/v1/jobs/status", json={"jobs": [
        {"job_id": ids[0], "status": "succeeded", "queue": "pages", "task": "tasks.fetch",
         "attempts": 1, "args": {"args": [1], "kwargs": {}}},
        {"job_id": ids[3], "status": "queued", "queue": "pages", "task": "tasks.total"}]})
    page, problems = _new_page(browser)
    page.goto(server.url + f"/ui/jobs/{ids[0]}")
    tree = page.locator("#job-flow")
    tree.wait_for()
    assert tree.locator(".flow-node").count() == 4
    assert tree.locator(".this-job").get_attribute("data-node") == "0"
    screenshot(page, tmp_path, "explorer-job-flow")
    tree.locator(f'a[href="/ui/jobs/{ids[3]}"]').click()
    page.wait_for_selector("#job-state")
    assert page.locator("#job-flow .this-job").get_attribute("data-node") == "3"
    assert problems == []
    page.close()
