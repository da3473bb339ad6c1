"""The dashboard's job explorer and per-message dead-letter actions without a browser, on
both backends: filters, paging, the job page (escaped), retry/delete one and in bulk,
CSRF refusals, redrive and delete of one dead letter."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.http.app import create_app
from conveyor.jobs import JobStatus
from conveyor.models import Body, SendEntry
from tests.conftest import OpenBroker
from tests.jobs.test_explorer import dead_job

HOSTILE = '</pre><script>alert("x")</script>'


@pytest.fixture
async def ui(open_broker: OpenBroker) -> AsyncIterator[tuple[httpx.AsyncClient, Broker]]:
    broker = await open_broker(stats_cache_seconds=0)
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        await http.get("/ui/jobs")  # the session's CSRF cookie
        yield http, broker


def _jobs(html: str) -> list[str]:
    return re.findall(r'<tr data-job="([^"]+)"', html)


async def test_list_filters_and_pages(ui: tuple[httpx.AsyncClient, Broker],
                                      clock: ManualClock) -> None:
    http, broker = ui
    for i in range(60):
        await broker.jobs.status_set_many([JobStatus(
            f"j{i:02d}", "dead" if i % 3 == 0 else "succeeded", "q" if i < 30 else "r",
            "t", 1, key=f"k{i % 2}")])
        clock.advance(1)
    page = await http.get("/ui/jobs")
    assert page.status_code == 200
    assert _jobs(page.text) == [f"j{i:02d}" for i in range(59, 9, -1)]  # 50 a page
    after = re.search(r'href="([^"]+)" id="next-page"', page.text)
    assert after is not None
    rest = await http.get(after.group(1).replace("&amp;", "&"))
    assert _jobs(rest.text) == [f"j{i:02d}" for i in range(9, -1, -1)]
    assert 'id="next-page"' not in rest.text and 'id="first-page"' in rest.text
    dead = await http.get("/ui/jobs", params={"state": "dead", "queue": "r", "key": "k0"})
    assert _jobs(dead.text) == [f"j{i:02d}" for i in (54, 48, 42, 36, 30)]
    assert 'value="r"' in dead.text and 'data-state="dead" class' not in dead.text
    start = clock.ms - 60_000
    window = await http.get("/ui/jobs", params={
        "created_since": _iso(start + 10_000), "created_until": str(start + 13_000)})
    assert _jobs(window.text) == ["j12", "j11", "j10"]
    bad = await http.get("/ui/jobs", params={"created_since": "yesterday-ish"})
    assert bad.status_code == 200 and 'id="filter-problem"' in bad.text
    assert "created_since must be a time" in bad.text


def _iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


async def test_job_page_shows_attempts_escaped(ui: tuple[httpx.AsyncClient, Broker],
                                               clock: ManualClock) -> None:
    http, broker = ui
    t = clock.ms
    await broker.jobs.status_set_many([JobStatus(
        "hostile", "queued", "q", "t", args={"args": [HOSTILE], "kwargs": {}})])
    await broker.jobs.status_set_many([JobStatus(
        "hostile", "dead", "q", "t", 1, f"ValueError: {HOSTILE}", worker="w-1",
        started_at=t, ended_at=t + 1500,
        traceback=f'Traceback (most recent call last):\n  File "x.py"\nValueError: {HOSTILE}')])
    page = await http.get("/ui/jobs/hostile")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert page.text.count("&lt;/pre&gt;&lt;script&gt;") >= 3  # arguments, error, traceback
    assert 'data-outcome="dead"' in page.text and "1.500 s" in page.text
    assert 'class="traceback"' in page.text and "w-1" in page.text
    assert 'action="/ui/jobs/hostile/retry"' in page.text
    assert 'action="/ui/jobs/hostile/delete"' in page.text
    missing = await http.get("/ui/jobs/nope")
    assert missing.status_code == 404 and "No job named" in missing.text


async def test_retry_and_delete_one_and_in_bulk(ui: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = ui
    token = http.cookies["conveyor_csrf"]
    first = await dead_job(broker)
    retried = await http.post(f"/ui/jobs/{first}/retry", data={"csrf_token": token})
    assert retried.status_code == 303 and "notice=Job+sent+again" in retried.headers["location"]
    found = await broker.jobs.status_get(first)
    assert found is not None and found.status == "queued"
    again = await http.post(f"/ui/jobs/{first}/retry", data={"csrf_token": token})
    assert "error=" in again.headers["location"]  # queued: not retryable, nothing changed
    forged = await http.post(f"/ui/jobs/{first}/delete", data={"csrf_token": "x" * 30})
    assert forged.status_code == 403
    others = [await dead_job(broker) for _ in range(3)]
    bulk = await http.post("/ui/jobs/retry", data={"csrf_token": token, "state": "dead"})
    assert "Retried+3+jobs" in bulk.headers["location"]
    for job_id in others:
        await broker.jobs.status_set(job_id, "succeeded", queue="work", task="t", attempts=1)
    deleted = await http.post("/ui/jobs/delete", data={"csrf_token": token,
                                                        "state": "succeeded"})
    assert "Deleted+3+ended+jobs" in deleted.headers["location"]
    one = await http.post(f"/ui/jobs/{first}/delete", data={"csrf_token": token})
    assert "error=" in one.headers["location"]  # queued: cannot be deleted
    assert [j.job_id for j in (await broker.jobs.list()).jobs] == [first]


async def test_one_dead_letter_redriven_or_deleted(
        ui: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = ui
    token = http.cookies["conveyor_csrf"]
    await broker.create_queue("dlq")
    await broker.create_queue("src", {"dead_letter_queue": "dlq", "max_receive_count": 1})
    sent = await broker.send("src", [SendEntry(Body(f"m{i}")) for i in range(3)])
    for m in await broker.receive("src", 10):
        await broker.retry("src", m.receipt_handle, 0, "boom", dead_letter=True)
    page = await http.get("/ui/queues/dlq")
    for s in sent:
        assert f'action="/ui/queues/dlq/messages/{s.id}/redrive"' in page.text
    moved = await http.post(f"/ui/queues/dlq/messages/{sent[1].id}/redrive",
                            data={"csrf_token": token})
    assert "notice=Moved+message" in moved.headers["location"]
    assert [m.body.text for m in await broker.peek("src")] == ["m1"]
    gone = await http.post(f"/ui/queues/dlq/messages/{sent[2].id}/delete",
                           data={"csrf_token": token})
    assert "notice=Deleted+message" in gone.headers["location"]
    assert [m.id for m in await broker.peek("dlq")] == [sent[0].id]
    twice = await http.post(f"/ui/queues/dlq/messages/{sent[2].id}/redrive",
                            data={"csrf_token": token})
    assert "error=" in twice.headers["location"] and "not+in+this+queue" in \
        twice.headers["location"]
    bad = await http.post("/ui/queues/dlq/messages/not-an-id/delete",
                          data={"csrf_token": token})
    assert "error=message_id+must+be" in bad.headers["location"]
    assert len(await broker.peek("dlq")) == 1  # refusals changed nothing


async def test_job_page_shows_its_flow_tree(ui: tuple[httpx.AsyncClient, Broker],
                                            clock: ManualClock) -> None:
    from conveyor.worker import App, Worker, WorkerOptions, chain
    from tests.worker.helpers import eventually, running

    http, broker = ui
    app = App(clock=clock)
    app.use(broker)

    @app.task(queue="steps", track=True)
    def fetch(page: int) -> str:
        return f"page {page}"

    @app.task(queue="steps", track=True)
    def measure(text: str) -> int:
        return len(text)

    run = await chain(fetch.s(3), measure.s()).aenqueue()
    first, second = run.job_ids

    async def ended() -> bool:
        found = await broker.jobs.status_get(second)
        return found is not None and found.status == "succeeded"

    async with running(Worker(app, WorkerOptions(wait_seconds=0, scheduler=False))):
        await eventually(ended, what="the chain's end")
    page = await http.get(f"/ui/jobs/{second}")
    assert page.status_code == 200
    assert 'id="job-flow"' in page.text and f'href="/ui/flows/{run.id}"' in page.text
    tree = page.text.split('id="job-flow"', 1)[1].split("</section>", 1)[0]
    assert f'href="/ui/jobs/{first}"' in tree  # the other step links to its own page
    assert 'class="flow-node this-job"' in tree and "this job" in tree
    alone = await http.get(f"/ui/jobs/{first}")
    assert f'href="/ui/jobs/{second}"' in alone.text
    await broker.jobs.status_set_many([JobStatus("no-flow", "queued", "q", "t")])
    assert 'id="job-flow"' not in (await http.get("/ui/jobs/no-flow")).text


def test_the_pages_and_their_forms_need_manage() -> None:
    from conveyor.http.auth import Need, required

    for method, path in (("GET", "/ui/jobs"), ("GET", "/ui/jobs/j1"),
                         ("POST", "/ui/jobs/retry"), ("POST", "/ui/jobs/delete"),
                         ("POST", "/ui/jobs/j1/retry"), ("POST", "/ui/jobs/j1/delete")):
        assert required(method, path) == Need("manage"), path
    # One dead letter's actions need manage on its dead-letter queue, as redrive-all does.
    for action in ("redrive", "delete"):
        assert required("POST", f"/ui/queues/dlq/messages/m1/{action}") == Need("manage",
                                                                                "dlq")


async def test_cancel_one_and_in_bulk(ui: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = ui
    token = http.cookies["conveyor_csrf"]
    await broker.create_queue("c")
    sent = await broker.send("c", [SendEntry(Body.of({"task": "t", "args": [],
                                                      "kwargs": {}})) for _ in range(3)])
    await broker.jobs.status_set_many([JobStatus(s.id, "queued", "c", "t") for s in sent])
    page = await http.get(f"/ui/jobs/{sent[0].id}")
    assert f'action="/ui/jobs/{sent[0].id}/cancel"' in page.text
    one = await http.post(f"/ui/jobs/{sent[0].id}/cancel", data={"csrf_token": token})
    assert "notice=Cancel+requested" in one.headers["location"]
    found = await broker.jobs.status_get(sent[0].id)
    assert found is not None and found.status == "cancelled"
    assert 'value="cancel"' not in (await http.get(f"/ui/jobs/{sent[0].id}")).text
    again = await http.post(f"/ui/jobs/{sent[0].id}/cancel", data={"csrf_token": token})
    assert "error=" in again.headers["location"]  # ended: not cancellable, nothing changed
    bulk = await http.post("/ui/jobs/cancel", data={"csrf_token": token, "queue": "c"})
    assert "Cancelled+2+jobs" in bulk.headers["location"]
    states = {j.job_id: j.status for j in (await broker.jobs.list()).jobs}
    assert set(states.values()) == {"cancelled"} and len(states) == 3
    assert await broker.peek("c") == []  # the queued jobs' messages are gone
    forged = await http.post("/ui/jobs/cancel", data={"csrf_token": "y" * 30})
    assert forged.status_code == 403


async def test_a_bulk_action_on_a_too_long_filter_is_refused(
        ui: tuple[httpx.AsyncClient, Broker]) -> None:
    """A filter longer than the broker takes is an error, not cut to a filter that matches
    other jobs (a task named by its first 200 characters was deleted)."""
    http, broker = ui
    token = http.cookies["conveyor_csrf"]
    await broker.jobs.status_set("long", "dead", queue="work", task="t" * 200, attempts=1)
    for action in ("retry", "delete"):
        answer = await http.post(f"/ui/jobs/{action}", data={"csrf_token": token,
                                                             "task": "t" * 201})
        assert answer.status_code == 303 and "error=task+must" in answer.headers["location"]
    found = await broker.jobs.status_get("long")
    assert found is not None and found.status == "dead"
