"""`client.flows`: flows over HTTP, async and sync on the same calls (`broker.flows`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from conveyor.client._calls import Call
from conveyor.flows import Flow, FlowStep, NodeEnd, end_json, flow_of, step_json


def create(steps: Sequence[FlowStep], keep_seconds: int | None) -> Call[Flow]:
    """POST /v1/flows."""
    body: dict[str, Any] = {"steps": [step_json(s) for s in steps]}
    if keep_seconds is not None:
        body["keep_seconds"] = keep_seconds
    return Call("POST", "/v1/flows", lambda _, d: flow_of(d), body)


def end_many(ends: Sequence[NodeEnd]) -> Call[None]:
    """POST /v1/flows/ends."""
    return Call("POST", "/v1/flows/ends", lambda _, d: None,
                {"ends": [end_json(e) for e in ends]}, empty=True)


def results(flow_id: str, node: int) -> Call[list[Any]]:
    """GET /v1/flows/{id}/nodes/{node}/results."""
    return Call("GET", f"/v1/flows/{quote(flow_id, safe='')}/nodes/{int(node)}/results",
                lambda _, d: list(d["results"]))


def get(flow_id: str) -> Call[Flow]:
    """GET /v1/flows/{id}."""
    return Call("GET", f"/v1/flows/{quote(flow_id, safe='')}", lambda _, d: flow_of(d))


def of_job(job_id: str) -> Call[Flow]:
    """GET /v1/jobs/{id}/flow."""
    return Call("GET", f"/v1/jobs/{quote(job_id, safe='')}/flow", lambda _, d: flow_of(d))


class AsyncFlows:
    """Flows, through a server."""

    def __init__(self, run: Callable[[Call[Any]], Any]) -> None:
        self._run = run

    async def create(self, steps: Sequence[FlowStep], *, keep_seconds: int | None = None
                     ) -> Flow:
        """Store a flow and send its first jobs (see `broker.flows.Flows.create`)."""
        found: Flow = await self._run(create(steps, keep_seconds))
        return found

    async def end_many(self, ends: Sequence[NodeEnd]) -> None:
        """Record that flow jobs ended."""
        await self._run(end_many(ends))

    async def results(self, flow_id: str, node: int) -> list[Any]:
        """The results of the nodes `node` waits for."""
        found: list[Any] = await self._run(results(flow_id, node))
        return found

    async def get(self, flow_id: str) -> Flow:
        """A flow's tree."""
        found: Flow = await self._run(get(flow_id))
        return found

    async def of_job(self, job_id: str) -> Flow:
        """The tree of the flow a job belongs to."""
        found: Flow = await self._run(of_job(job_id))
        return found


class SyncFlows:
    """`AsyncFlows`, blocking."""

    def __init__(self, run: Callable[[Call[Any]], Any]) -> None:
        self._run = run

    def create(self, steps: Sequence[FlowStep], *, keep_seconds: int | None = None) -> Flow:
        """Store a flow and send its first jobs."""
        found: Flow = self._run(create(steps, keep_seconds))
        return found

    def get(self, flow_id: str) -> Flow:
        """A flow's tree."""
        found: Flow = self._run(get(flow_id))
        return found

    def of_job(self, job_id: str) -> Flow:
        """The tree of the flow a job belongs to."""
        found: Flow = self._run(of_job(job_id))
        return found
