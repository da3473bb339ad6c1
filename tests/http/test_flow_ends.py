"""`POST /v1/flows/ends` naming a flow or a node that is not there records nothing for it
and is no error (a flow may expire while its job runs: the worker's batch must not fail
for it), while the batch's other ends are recorded; the results of a node that is not
there are a 404 with a code. Both backends, the app in process over httpx's ASGI
transport."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.errors import FlowNodeNotFound, FlowNotFound
from conveyor.flows import NodeEnd
from tests.http.helpers import assert_error

UNKNOWN = "01900000-0000-7000-8000-0000000000f0"


async def _flow(http: httpx.AsyncClient, broker: Broker) -> dict[str, Any]:
    """A flow of two parts and their merge (which waits for both)."""
    await broker.create_queue("jobs")
    made = await http.post("/v1/flows", json={"steps": [
        {"task": "part", "queue": "jobs"}, {"task": "part", "queue": "jobs"},
        {"task": "merge", "queue": "jobs", "after": [0, 1], "results": "list"}]})
    assert made.status_code == 201, made.text
    return dict(made.json())


async def _states(http: httpx.AsyncClient, flow_id: str) -> list[str]:
    return [n["state"] for n in (await http.get(f"/v1/flows/{flow_id}")).json()["nodes"]]


@pytest.mark.parametrize("bad", [{"flow_id": UNKNOWN, "node": 0}, {"node": 3},
                                 {"node": 2**31 - 1}])
async def test_an_end_of_an_unknown_flow_or_node_records_nothing_for_it(
        http: httpx.AsyncClient, broker: Broker, bad: dict[str, Any]) -> None:
    flow = await _flow(http, broker)
    good = {"flow_id": flow["flow_id"], "node": 0, "ok": True, "result": 1}
    answer = await http.post("/v1/flows/ends", json={"ends": [
        good, {"flow_id": flow["flow_id"], "ok": True, **bad}]})
    assert answer.status_code == 204, answer.text
    assert await _states(http, flow["flow_id"]) == ["succeeded", "queued", "waiting"]
    assert (await broker.queue_stats("jobs")).visible == 2  # the merge still waits
    assert_error(await http.get(f"/v1/flows/{UNKNOWN}"), 404, "flow_not_found")


async def test_known_nodes_end_as_before(http: httpx.AsyncClient, broker: Broker) -> None:
    flow = await _flow(http, broker)
    ends = [{"flow_id": flow["flow_id"], "node": n, "ok": True, "result": n} for n in (0, 1)]
    for _ in range(2):  # a repeat changes nothing, and is no error
        answer = await http.post("/v1/flows/ends", json={"ends": ends})
        assert answer.status_code == 204, answer.text
    assert await _states(http, flow["flow_id"]) == ["succeeded", "succeeded", "queued"]
    assert (await broker.queue_stats("jobs")).visible == 3  # the merge, released once
    results = await http.get(f"/v1/flows/{flow['flow_id']}/nodes/2/results")
    assert results.json() == {"results": [0, 1]}
    assert_error(await http.get(f"/v1/flows/{flow['flow_id']}/nodes/3/results"), 404,
                 "flow_node_not_found")


async def test_the_results_of_what_is_not_there_are_404(http: httpx.AsyncClient,
                                                        broker: Broker) -> None:
    flow = await _flow(http, broker)
    assert_error(await http.get(f"/v1/flows/{UNKNOWN}/nodes/0/results"), 404,
                 "flow_not_found")
    with pytest.raises(FlowNodeNotFound):
        await broker.flows.results(flow["flow_id"], 9)
    with pytest.raises(FlowNotFound):
        await broker.flows.results(UNKNOWN, 0)
    await broker.flows.end_many([NodeEnd(UNKNOWN, 0, True)])  # no error, nothing written
    assert await _states(http, flow["flow_id"]) == ["queued", "queued", "waiting"]
