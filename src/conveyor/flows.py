"""Values of flows: jobs that wait for other jobs (chains, groups, chords, parent/child).

Pure data, like `conveyor.jobs`. A flow is a list of steps, each a job (task, queue,
arguments) that waits for the steps named in its `after` (by position in the list). A step
with nothing to wait for is sent at once; a waiting step is kept in the database and sent
when the last step it waits for has ended. `broker.flows` stores and runs them; the worker
(`worker.canvas`) builds the steps from `chain`, `group`, `chord` and `App.flow`.

The tree as JSON (`flow_json`, `GET /v1/flows/{id}` and `GET /v1/jobs/{id}/flow`):
`{"flow_id", "created_at", "nodes": [{"node", "job_id", "task", "queue", "state",
"after", "on_failure", "pending", "result", "error"}]}` where `after` lists the nodes a node
waits for (its children, in parent/child terms), so the nodes no one waits for are the roots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.errors import FlowCycle, InvalidFlow

__all__ = ["MAX_ERROR", "MAX_FLOW_STEPS", "MAX_RESULT_BYTES", "NODE_STATES", "POLICIES",
           "RESULTS", "Flow",
           "FlowNode", "FlowStep", "NodeEnd", "check_steps", "end_json", "end_of", "flow_json",
           "flow_of", "step_json", "step_of"]

POLICIES = ("fail", "ignore", "continue")
"""What a step's failure does to the steps waiting for it: `fail` fails them (and theirs)
without running them; `ignore` counts it as ended (its result is None); `continue` sends
them at once, without waiting for their other steps (BullMQ's continueParentOnFailure)."""

RESULTS = ("none", "one", "list")
"""How a step gets the results of the steps it waits for, as its first argument: not at
all, the one result (a chain's next step), or a list in the order of `after` (a chord's
callback, a parent)."""

NODE_STATES = ("waiting", "queued", "succeeded", "failed")
"""A node waits for others, is queued (sent; perhaps running), or has ended."""

MAX_FLOW_STEPS = 50_000
MAX_RESULT_BYTES = 1_048_576
"""The largest result (as JSON) a flow keeps for the steps waiting on it."""
MAX_ERROR = 4_000
"""The most characters of a failed node's error that are kept."""


@dataclass(frozen=True, slots=True)
class FlowStep:
    """One job of a flow to create; `after` holds positions of earlier or later steps."""

    task: str
    queue: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    after: Sequence[int] = ()
    on_failure: str = "fail"
    results: str = "none"
    priority: int = 0


@dataclass(frozen=True, slots=True)
class FlowNode:
    """A step of a stored flow, with its state and (once ended) result or error."""

    node: int
    job_id: str
    task: str
    queue: str
    state: str
    after: list[int]
    on_failure: str
    pending: int = 0
    result: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """A stored flow: its id, when it was made (ms since the epoch), and its nodes."""

    flow_id: str
    created_at: int
    nodes: list[FlowNode]

    def job_ids(self) -> list[str]:
        """The job id of each node, in node order."""
        return [n.job_id for n in self.nodes]


def check_steps(steps: Sequence[FlowStep]) -> None:
    """InvalidFlow unless `steps` make a flow: 1 to MAX_FLOW_STEPS steps, known policies
    and result modes, `after` naming other steps, and no cycle (FlowCycle)."""
    if not 1 <= len(steps) <= MAX_FLOW_STEPS:
        raise InvalidFlow(f"A flow has 1 to {MAX_FLOW_STEPS} steps, not {len(steps)}.",
                          field="steps")
    for index, step in enumerate(steps):
        if not isinstance(step.task, str) or not 1 <= len(step.task) <= 200:
            raise InvalidFlow("A step's task is a name of 1 to 200 characters.",
                              field="task", index=index)
        if step.on_failure not in POLICIES:
            raise InvalidFlow(f"on_failure is one of {', '.join(POLICIES)}, not "
                              f"{step.on_failure!r}.", field="on_failure", index=index)
        if step.results not in RESULTS:
            raise InvalidFlow(f"results is one of {', '.join(RESULTS)}, not "
                              f"{step.results!r}.", field="results", index=index)
        if len(set(step.after)) != len(step.after):
            raise InvalidFlow("A step names each step it waits for once.", field="after",
                              index=index)
        for dep in step.after:
            if isinstance(dep, bool) or not isinstance(dep, int) or \
                    not 0 <= dep < len(steps):
                raise InvalidFlow(f"after names step {dep!r}, which is not in the flow.",
                                  field="after", index=index)
            if dep == index:
                raise FlowCycle(f"Step {index} ({step.task}) waits for itself.",
                                field="after", index=index)
        if step.results == "one" and len(step.after) != 1:
            raise InvalidFlow("results='one' needs exactly one step in after.",
                              field="results", index=index)
    _check_acyclic(steps)


def _check_acyclic(steps: Sequence[FlowStep]) -> None:
    # Kahn's algorithm: whatever cannot be ordered lies on or behind a cycle.
    waiting = [len(s.after) for s in steps]
    dependents: list[list[int]] = [[] for _ in steps]
    for index, step in enumerate(steps):
        for dep in step.after:
            dependents[dep].append(index)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for parent in dependents[node]:
            waiting[parent] -= 1
            if waiting[parent] == 0:
                ready.append(parent)
    if seen < len(steps):
        stuck = next(i for i, n in enumerate(waiting) if n > 0)
        raise FlowCycle(f"The flow has a cycle: step {stuck} ({steps[stuck].task}) waits, "
                        "through others, for itself.", field="after", index=stuck)


def step_json(step: FlowStep) -> dict[str, Any]:
    """A step as the JSON `POST /v1/flows` takes."""
    return {"task": step.task, "queue": step.queue, "args": list(step.args),
            "kwargs": dict(step.kwargs), "after": list(step.after),
            "on_failure": step.on_failure, "results": step.results,
            "priority": step.priority}


def step_of(data: Mapping[str, Any]) -> FlowStep:
    """A step from its JSON (`step_json`)."""
    return FlowStep(data["task"], data["queue"], data.get("args") or [],
                    data.get("kwargs") or {}, data.get("after") or [],
                    data.get("on_failure", "fail"), data.get("results", "none"),
                    data.get("priority", 0))


def flow_json(flow: Flow) -> dict[str, Any]:
    """The flow tree as JSON (see the module docstring)."""
    return {"flow_id": flow.flow_id, "created_at": flow.created_at, "nodes": [
        {"node": n.node, "job_id": n.job_id, "task": n.task, "queue": n.queue,
         "state": n.state, "after": n.after, "on_failure": n.on_failure,
         "pending": n.pending, "result": n.result, "error": n.error} for n in flow.nodes]}


def flow_of(data: Mapping[str, Any]) -> Flow:
    """A flow from its JSON (`flow_json`)."""
    return Flow(data["flow_id"], data["created_at"], [
        FlowNode(n["node"], n["job_id"], n["task"], n["queue"], n["state"], list(n["after"]),
                 n["on_failure"], n.get("pending", 0), n.get("result"), n.get("error"))
        for n in data["nodes"]])


@dataclass(frozen=True, slots=True)
class NodeEnd:
    """A flow node's job ended: succeeded (`ok`, with its `result`, any JSON value) or
    failed for good (with its `error`)."""

    flow_id: str
    node: int
    ok: bool
    result: Any = None
    error: str | None = None


def end_json(end: NodeEnd) -> dict[str, Any]:
    """An end as the JSON `POST /v1/flows/ends` takes."""
    return {"flow_id": end.flow_id, "node": end.node, "ok": end.ok, "result": end.result,
            "error": end.error}


def end_of(data: Mapping[str, Any]) -> NodeEnd:
    """An end from its JSON (`end_json`)."""
    return NodeEnd(data["flow_id"], data["node"], bool(data["ok"]), data.get("result"),
                   data.get("error"))
