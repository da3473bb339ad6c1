"""The dashboard's pages without a browser: escaping, 1,000 queues, the live feed, forms."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from conveyor.broker.broker import Broker
from conveyor.dashboard.views import PAGE_SIZE
from conveyor.heartbeats import Heartbeat, Schedule
from conveyor.http.app import create_app
from conveyor.http.dashboard import _event
from conveyor.models import Body, MessageAttribute, SendEntry
from tests.conftest import OpenBroker

HOSTILE = '</pre><script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
async def ui(open_broker: OpenBroker) -> AsyncIterator[tuple[httpx.AsyncClient, Broker]]:
    broker = await open_broker(stats_cache_seconds=0)
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http, broker


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_everything_shown_is_escaped(ui: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = ui
    await broker.create_queue("dead")
    await broker.create_queue("q", {"tags": {"team": HOSTILE}, "dead_letter_queue": "dead",
                                    "max_receive_count": 3})
    await broker.send("q", [SendEntry(Body(HOSTILE), attributes={
        "a": MessageAttribute("String", HOSTILE)}, group_id=None)])
    await broker.send("dead", [SendEntry(Body.of({"html": HOSTILE}))])
    for path in ("/", "/ui/queues/q", "/ui/queues/dead", "/ui/queues/%3Cimg%20src=x%3E"):
        page = await http.get(path)
        assert page.status_code == (404 if "img" in path else 200)  # no such queue
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
        assert "default-src 'self'" in page.headers["content-security-policy"]
    page = (await http.get("/ui/queues/q")).text
    assert "&lt;/pre&gt;&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_thousand_queues_a_page_at_a_time(ui: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = ui
    for i in range(1000):
        await broker.create_queue(f"q{i:04d}")
    await broker.send("q0150", [SendEntry(Body("x"))] * 3)
    started = time.perf_counter()
    page = await http.get("/")
    took = time.perf_counter() - started
    assert page.status_code == 200
    names = re.findall(r'<tr data-name="(q\d+)"', page.text)
    assert names == [f"q{i:04d}" for i in range(PAGE_SIZE)]
    assert '<small id="queue-count">1000</small>' in page.text
    assert f"Showing {PAGE_SIZE} of 1000" in page.text
    assert took < 2.0, took  # sampling 1,000 queues and rendering a page of them
    second = await http.get("/", params={"after": names[-1]})
    names = re.findall(r'<tr data-name="(q\d+)"', second.text)
    assert names == [f"q{i:04d}" for i in range(PAGE_SIZE, 2 * PAGE_SIZE)]
    assert '<tr data-name="q0150">' in second.text and "<td class=\"n\" data-col=\"visible\">3" \
        in second.text
    last = await http.get("/", params={"after": "q0949"})
    assert re.findall(r'<tr data-name="(q\d+)"', last.text)[-1] == "q0999"
    assert 'id="next-page"' not in last.text
    some = await http.get("/", params={"prefix": "q05"})
    assert re.findall(r'<tr data-name="(q\d+)"', some.text) == [f"q05{i:02d}"
                                                               for i in range(100)]
    assert 'id="next-page"' not in some.text
    # What the live feed sends (over a real socket in test_browser.py): the same page.
    monitor = http._transport.app.state.monitor  # type: ignore[attr-defined]
    event = _event(None, await monitor.current(), "", "q0099")
    data = orjson.loads(event.split(b"data: ", 1)[1])
    assert (len(data["rows"]), data["total"], data["matching"]) == (PAGE_SIZE, 1000, 1000)
    assert data["rows"][50][:4] == ["q0150", 3, 0, 0]
    assert len(event) < 20_000


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_forms_act_with_the_session_token(ui: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = ui
    await http.get("/")
    token = http.cookies["conveyor_csrf"]
    made = await http.post("/ui/queues", data={"csrf_token": token, "name": "fresh"})
    assert made.status_code == 303 and made.headers["location"].startswith("/?notice=Created")
    sent = await http.post("/ui/queues/fresh/send", data={
        "csrf_token": token, "body": '{"a": [1, 2]}', "json": "1", "priority": "5"})
    assert sent.status_code == 303 and "notice=Sent" in sent.headers["location"]
    [peeked] = await broker.peek("fresh")
    assert peeked.body.value() == {"a": [1, 2]} and peeked.priority == 5
    bad = await http.post("/ui/queues/fresh/send", data={
        "csrf_token": token, "body": "{nope", "json": "1"})
    assert "error=" in bad.headers["location"]
    missing = await http.post("/ui/queues/nope/purge", data={"csrf_token": token})
    assert "error=" in missing.headers["location"]
    page = await http.get(missing.headers["location"])
    assert "does not exist" in page.text
    series = (await http.get("/ui/queues/fresh/series")).json()
    assert series["queue"] == "fresh" and series["points"][-1]["visible"] == 1
    static = await http.get("/ui/static/chart.min.js")
    assert static.status_code == 200 and b"Chart.js v3" in static.content[:200]
    assert (await http.get("/ui/static/..%2Fviews.py")).status_code == 404
    assert (await http.get("/ui/static/chart.js.LICENSE")).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_an_unknown_page_is_a_404_page(ui: tuple[httpx.AsyncClient, Broker]) -> None:
    """It was the API's JSON 404; the path is shown escaped. Outside the dashboard the
    API's 404 stays JSON."""
    http, _ = ui
    for path in ("/ui/nosuch", "/ui/queues/q/nosuch", "/ui/<b>x</b>"):
        for method in ("GET", "POST"):
            got = await http.request(method, path)
            assert got.status_code == 404, (method, path)
            assert got.headers["content-type"].startswith("text/html")
            assert "frame-ancestors 'none'" in got.headers["content-security-policy"]
            assert "<title>Not found · conveyor</title>" in got.text
            assert "No dashboard page at /ui/" in got.text and "<b>" not in got.text
    head = await http.head("/ui/nosuch")
    assert head.status_code == 404 and head.content == b""
    api = await http.get("/v1/nosuch")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_send_form_refuses_a_delay_or_priority_that_is_no_whole_number(
        ui: tuple[httpx.AsyncClient, Broker]) -> None:
    """They were taken for "not given" (an outside probe): sent at once, priority 0."""
    http, broker = ui
    await http.get("/")
    token = http.cookies["conveyor_csrf"]
    await broker.create_queue("form")
    for field, value in [("delay", "-5"), ("delay", "abc"), ("delay", "1.5"),
                         ("delay", "1e9"), ("priority", "x"), ("priority", "2.0")]:
        got = await http.post("/ui/queues/form/send", data={
            "csrf_token": token, "body": "b", field: value})
        assert got.status_code == 303 and "error=" in got.headers["location"], (field, value)
    assert await broker.peek("form") == []
    sent = await http.post("/ui/queues/form/send", data={
        "csrf_token": token, "body": "b", "delay": " ", "priority": ""})
    assert "notice=Sent" in sent.headers["location"]
    huge = await http.post("/ui/queues/form/send", data={
        "csrf_token": token, "body": "x" * 2_000_000})
    assert huge.status_code == 413 and "too large" in huge.text
    assert len(await broker.peek("form")) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_workers_page_escapes_and_lists(ui: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = ui
    empty = await http.get("/ui/workers")
    assert empty.status_code == 200 and "No live workers" in empty.text
    await broker.workers.beat(Heartbeat(HOSTILE[:200], HOSTILE[:255], 7, ("q",), 2, 1, 60.0,
                                        (Schedule("s", HOSTILE[:200], "q", HOSTILE, 0),)))
    page = await http.get("/ui/workers")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert page.text.count('<tr data-id="') == 1 and "1 / 2" in page.text
    assert "1970-01-01 00:00:00.000Z" in page.text  # the schedule's next run
    front = await http.get("/")
    assert 'id="section-workers"' in front.text and "running jobs" in front.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_prefix_matching_nothing_says_so(ui: tuple[httpx.AsyncClient, Broker]) -> None:
    http, broker = ui
    await broker.create_queue("orders")
    page = (await http.get("/", params={"prefix": "zzz"})).text
    empty = re.search(r'<p id="empty" class="muted"( hidden)?>(.*?)</p>', page)
    assert empty is not None and empty.group(1) is None
    assert empty.group(2) == "No queue names start with <code>zzz</code>."
    assert '<p id="empty" class="muted" hidden>' in (await http.get("/")).text
