"""Routes for flows: create one, record its jobs' ends, read its tree (`broker.flows`).

`POST /v1/flows` takes the steps of `conveyor.flows.FlowStep` (each waits for the steps
named by position in `after`); a cycle answers 400 `flow_cycle`, any other bad flow 400
`invalid_flow`, and nothing is written. The tree (`GET /v1/flows/{id}`,
`GET /v1/jobs/{id}/flow`) is `conveyor.flows.flow_json`: nodes with the nodes each waits for.

With API keys, creating a flow takes `send` on every queue (`conveyor.http.auth.required`);
recording a node's end takes `receive` on that node's queue (a worker of it), reading a
tree `receive` on every queue of its nodes, and a node's results `receive` on its queue.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from conveyor.broker.broker import Broker
from conveyor.broker.flows import DEFAULT_KEEP_SECONDS
from conveyor.errors import FlowNotFound
from conveyor.flows import POLICIES, RESULTS, Flow, FlowStep, NodeEnd, flow_json
from conveyor.http.auth import permit, scoped
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.wire import json_response

router = APIRouter(tags=["flows"], dependencies=[Depends(checked_json)])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true is not 1


class StepIn(_In):
    """One job of a flow."""

    task: str = Field(description="The task's name (the worker's app must have it).")
    queue: str = Field(description="The queue its job goes to (it must exist).")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    after: list[int] = Field(default_factory=list, description="Positions of the steps "
                             "this one waits for (its children); none: it runs at once.")
    on_failure: str = Field("fail", description=f"One of {', '.join(POLICIES)}: what this "
                            "step's failure does to the steps waiting for it.")
    results: str = Field("none", description=f"One of {', '.join(RESULTS)}: how the results "
                         "of `after` reach this job (as its first argument).")
    priority: int = 0


class FlowIn(_In):
    """A flow to create."""

    steps: list[StepIn]
    keep_seconds: int = Field(DEFAULT_KEEP_SECONDS, description="How long the tree and "
                              "results are kept.")


class NodeOut(BaseModel):
    """A node of a flow's tree."""

    node: int
    job_id: str
    task: str
    queue: str
    state: str = Field(description="waiting, queued, succeeded or failed.")
    after: list[int] = Field(description="The nodes this one waits for (its children).")
    on_failure: str
    pending: int = Field(description="How many of `after` have not ended yet.")
    result: Any = None
    error: str | None = None


class FlowOut(BaseModel):
    """A flow's tree: roots are the nodes no other node waits for."""

    flow_id: str
    created_at: int = Field(description="ms since the epoch.")
    nodes: list[NodeOut]


class EndIn(_In):
    """A flow job ended."""

    flow_id: str
    node: int
    ok: bool
    result: Any = None
    error: str | None = None


class EndsIn(_In):
    """Ends to record, up to 1,000."""

    ends: list[EndIn]


class ResultsOut(BaseModel):
    """The results of the nodes a node waits for, in node order (None: failed)."""

    results: list[Any]


@router.post("/v1/flows", status_code=201, response_model=FlowOut,
             responses=errors(400, 404, 422))
async def create_flow(request: FlowIn, broker: BrokerDep) -> Response:
    """Store a flow and send the jobs that wait for nothing; its tree with every job id."""
    steps = [FlowStep(s.task, s.queue, s.args, s.kwargs, s.after, s.on_failure, s.results,
                      s.priority) for s in request.steps]
    flow = await broker.flows.create(steps, keep_seconds=request.keep_seconds)
    return json_response(flow_json(flow), 201)


@router.post("/v1/flows/ends", status_code=204, response_class=Response,
             responses=errors(400, 422))
async def record_ends(request: EndsIn, broker: BrokerDep, http: Request) -> Response:
    """Record that flow jobs ended (a worker's call; a repeat changes nothing, and so does
    an end of a flow or node not there: a flow may expire while its job runs)."""
    await _permit_ends(http, broker, request.ends)
    await broker.flows.end_many([NodeEnd(e.flow_id, e.node, e.ok, e.result, e.error)
                                 for e in request.ends])
    return Response(status_code=204)


@router.get("/v1/flows/{flow_id}", response_model=FlowOut, responses=errors(404, 422))
async def get_flow(flow_id: str, broker: BrokerDep, http: Request) -> Response:
    """A flow's tree; 404 `flow_not_found` when unknown or expired."""
    return json_response(flow_json(_shown(http, await broker.flows.get(flow_id))))


@router.get("/v1/flows/{flow_id}/nodes/{node}/results", response_model=ResultsOut,
            responses=errors(404, 422))
async def node_results(flow_id: str, node: int, broker: BrokerDep, http: Request
                       ) -> Response:
    """What a node's job gets: the results of the nodes it waits for; 404
    `flow_not_found` or `flow_node_not_found` when the flow or node is not there."""
    if scoped(http, "receive") is not None:
        await _permit_nodes(http, broker, [(flow_id, node)])
    return json_response({"results": await broker.flows.results(flow_id, node)})


@router.get("/v1/jobs/{job_id}/flow", response_model=FlowOut, responses=errors(404, 422))
async def job_flow(job_id: str, broker: BrokerDep, http: Request) -> Response:
    """The tree of the flow a job belongs to; 404 `flow_not_found` when it has none."""
    return json_response(flow_json(_shown(http, await broker.flows.of_job(job_id))))


def _shown(http: Request, flow: Flow) -> Flow:
    """The flow, once the key may read every queue its tree shows."""
    permit(http, "receive", *{n.queue for n in flow.nodes})
    return flow


async def _permit_ends(http: Request, broker: Broker, ends: list[EndIn]) -> None:
    if scoped(http, "receive") is not None:  # else no look-ups: every queue passes
        await _permit_nodes(http, broker, [(e.flow_id, e.node) for e in ends])


async def _permit_nodes(http: Request, broker: Broker, nodes: list[tuple[str, int]]
                        ) -> None:
    """`receive` on the queue of each (flow, node); one unknown to the broker is left for
    it to answer (an end of an expired flow changes nothing; its results are a 404)."""
    queues: dict[str, dict[int, str]] = {}  # flow -> node -> queue
    for flow_id, node in nodes:
        if flow_id not in queues:
            try:
                flow = await broker.flows.get(flow_id)
            except FlowNotFound:
                flow = Flow(flow_id, 0, [])
            queues[flow_id] = {n.node: n.queue for n in flow.nodes}
        if (queue := queues[flow_id].get(node)) is not None:
            permit(http, "receive", queue)
