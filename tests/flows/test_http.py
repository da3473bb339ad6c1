"""Flows over the HTTP API, on both backends: create, the tree, ends recorded by a worker's
call, refusals with 400 and a code (nothing written), and a worker through a server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.client.async_client import AsyncClient
from conveyor.clock import ManualClock
from conveyor.http.app import create_app
from conveyor.worker import App, Worker, WorkerOptions, chain, chord, group
from tests.http.helpers import assert_error
from tests.worker.helpers import running


@pytest.fixture
async def http(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on `create_app(broker)`, on each backend."""
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


def _step(task: str, *args: Any, after: list[int] | None = None, **more: Any
          ) -> dict[str, Any]:
    return {"task": task, "queue": "jobs", "args": list(args), "after": after or [], **more}


async def test_create_read_and_end(http: httpx.AsyncClient, broker: Broker) -> None:
    await broker.create_queue("jobs")
    response = await http.post("/v1/flows", json={"steps": [
        _step("fetch", 1), _step("fetch", 2),
        _step("merge", after=[0, 1], results="list")]})
    assert response.status_code == 201, response.text
    tree = response.json()
    flow_id = tree["flow_id"]
    assert [(n["node"], n["state"], n["after"], n["pending"]) for n in tree["nodes"]] == [
        (0, "queued", [], 0), (1, "queued", [], 0), (2, "waiting", [0, 1], 2)]
    assert (await broker.queue_stats("jobs")).visible == 2
    ends = [{"flow_id": flow_id, "node": 0, "ok": True, "result": {"a": 1}},
            {"flow_id": flow_id, "node": 1, "ok": False, "error": "boom"}]
    response = await http.post("/v1/flows/ends", json={"ends": ends[:1]})
    assert response.status_code == 204
    response = await http.get(f"/v1/jobs/{tree['nodes'][0]['job_id']}/flow")
    assert response.status_code == 200
    assert [n["state"] for n in response.json()["nodes"]] == ["succeeded", "queued",
                                                              "waiting"]
    assert response.json()["nodes"][0]["result"] == {"a": 1}
    await http.post("/v1/flows/ends", json={"ends": ends[1:]})
    merged = (await http.get(f"/v1/flows/{flow_id}")).json()["nodes"][2]
    assert merged["state"] == "failed" and merged["error"] == "step 1 failed: boom"
    response = await http.get(f"/v1/flows/{flow_id}/nodes/2/results")
    assert response.json() == {"results": [{"a": 1}, None]}


async def test_bad_flows_answer_400_and_write_nothing(http: httpx.AsyncClient,
                                                      broker: Broker) -> None:
    await broker.create_queue("jobs")
    cycle = [_step("a", after=[2]), _step("b", after=[0]), _step("c", after=[1])]
    assert_error(await http.post("/v1/flows", json={"steps": cycle}), 400, "flow_cycle",
                 field="after")
    assert_error(await http.post("/v1/flows", json={"steps": [_step("a", after=[7])]}),
                 400, "invalid_flow", index=0, field="after")
    assert_error(await http.post("/v1/flows", json={"steps": [
        _step("a"), _step("b", after=[0], on_failure="sometimes")]}), 400, "invalid_flow",
        index=1, field="on_failure")
    assert_error(await http.post("/v1/flows", json={"steps": []}), 400, "invalid_flow")
    # JSON true is not the number 1 (it was taken as step 1, and a priority of 1)
    for bad in ({"steps": [_step("a"), _step("b", after=[True])]},
                {"steps": [{**_step("a"), "priority": True}]},
                {"steps": [_step("a")], "keep_seconds": "3600"}):
        assert_error(await http.post("/v1/flows", json=bad), 422, "invalid_input")
    missing = {"steps": [_step("a"), {**_step("b"), "queue": "nowhere"}]}
    assert_error(await http.post("/v1/flows", json=missing), 404, "queue_not_found")
    assert (await broker.queue_stats("jobs")).total == 0
    assert_error(await http.get("/v1/flows/0190b0a4-0000-7000-8000-000000000000"), 404,
                 "flow_not_found")


async def test_a_worker_through_a_server_runs_flows(broker: Broker,
                                                    clock: ManualClock) -> None:
    transport = httpx.ASGITransport(app=create_app(broker))
    client = AsyncClient("http://localhost", transport=transport)
    app = App(clock=clock)
    app.use(client)

    @app.task(queue="remote")
    def inc(x: int) -> int:
        return x + 1

    @app.task(queue="remote")
    def total(values: list[int]) -> int:
        return sum(values)

    run = await chain(inc.s(0), inc.s(), inc.s()).aenqueue()
    fan = await chord(group(inc.s(i) for i in range(10)), total.s()).aenqueue()
    async with running(Worker(app, WorkerOptions(wait_seconds=0))):
        assert await run.result(timeout=20) == 3
        assert await fan.result(timeout=20) == sum(range(1, 11))
    await client.close()


def test_flow_routes_need_send_everywhere_to_create_and_receive_to_end() -> None:
    from conveyor.http.auth import Need, required

    assert required("POST", "/v1/flows") == Need("send", "*")
    assert required("POST", "/v1/flows/ends") == Need("receive")
    assert required("GET", "/v1/flows/x") == Need("receive")
    assert required("GET", "/v1/jobs/x/flow") == Need("receive")


async def test_the_dashboard_draws_the_tree(http: httpx.AsyncClient, broker: Broker) -> None:
    await broker.create_queue("jobs")
    flow = (await http.post("/v1/flows", json={"steps": [
        _step("part", 1), _step("part", 2), _step("<merge>", after=[0, 1], results="list"),
        _step("report", after=[2], results="one")]})).json()
    await http.post("/v1/flows/ends", json={"ends": [
        {"flow_id": flow["flow_id"], "node": 0, "ok": False, "error": "boom <b>"}]})
    page = await http.get(f"/ui/flows/{flow['flow_id']}")
    assert page.status_code == 200
    html = page.text
    # the root (report) first, then what it waits for, nested
    assert html.index('data-node="3"') < html.index('data-node="2"') < \
        html.index('data-node="0"') < html.index('data-node="1"')
    assert 'data-node="2" data-state="failed"' in html and "&lt;merge&gt;" in html
    assert "boom &lt;b&gt;" in html and "<b>" not in html
    missing = await http.get("/ui/flows/not-a-flow")
    assert missing.status_code == 404 and "No flow" in missing.text


async def test_a_task_no_live_worker_on_its_queue_has_is_refused(
        http: httpx.AsyncClient, broker: Broker) -> None:
    from conveyor.heartbeats import Heartbeat, Tally

    for name in ("jobs", "other", "idle"):
        await broker.create_queue(name)
    tally = Tally()
    tally.know("jobs", "fetch")
    tally.know("elsewhere", "merge")  # a task routed to a queue other than its own
    await broker.workers.beat(Heartbeat("w1", "host", 1, ("jobs", "other"), 10, 0, 60.0,
                                        counts=tally.snapshot()))
    typo = {"steps": [_step("fetch"), _step("fetsh", after=[0])]}
    assert_error(await http.post("/v1/flows", json=typo), 400, "unknown_task", index=1,
                 field="task")
    elsewhere = {"steps": [{**_step("fetch"), "queue": "other"},
                           {**_step("nope"), "queue": "other"}]}
    assert_error(await http.post("/v1/flows", json=elsewhere), 400, "unknown_task", index=1)
    assert (await broker.queue_stats("jobs")).total == 0
    assert (await broker.queue_stats("other")).total == 0
    fine = {"steps": [_step("fetch"), _step("merge", after=[0], results="one")]}
    assert (await http.post("/v1/flows", json=fine)).status_code == 201
    # No live worker reads "idle": nothing to go by, so its jobs wait for one.
    later = {"steps": [{**_step("anything"), "queue": "idle"}]}
    assert (await http.post("/v1/flows", json=later)).status_code == 201
    await broker.workers.remove("w1")
    assert (await http.post("/v1/flows", json=typo)).status_code == 201


def test_a_worker_beats_with_every_task_of_its_app_before_any_runs() -> None:
    from conveyor.heartbeats import Tally
    from conveyor.worker.heartbeat import Beater

    app = App()

    @app.task(queue="mail")
    def send_mail() -> None: ...

    @app.task(queue="reports")
    def report() -> None: ...

    beater = Beater(app, None, "w1", ["mail"], Tally(), lambda: (1, 0))  # type: ignore[arg-type]
    counts = {(c.queue, c.task): c.runs for c in beater.heartbeat().counts}
    assert counts == {("mail", "send_mail"): 0, ("reports", "report"): 0}
