"""Flows from Python: `chain`, `group`, `chord` and `App.flow` (parent/child), modelled on
Celery's canvas and BullMQ's FlowProducer.

```python
chain(fetch.s(url), parse.s(), store.s()).enqueue()        # each gets the previous result
group(resize.s(i) for i in images).enqueue()               # fan out
run = chord(group(count.s(p) for p in pages), total.s()).enqueue()
run.wait(timeout=60)                                       # total's result
app.flow(report.s(), children=[part.s(1), part.s(2).set(on_failure="ignore")]).enqueue()
```
A step that waits gets results as its first argument: a chain's next step the previous
step's result, a chord's callback and a flow's parent the list of their children's results
(None for a child that failed under `ignore`, or had not ended under `continue`).
`sig.set(on_failure=...)`: what the step's failure does to the steps waiting for it —
`fail` (default: they fail without running), `ignore` (they run once the rest have ended),
`continue` (they run at once). Everything is stored at enqueue in one transaction
(`broker.flows`); an unknown task or a bad flow is refused first and nothing is written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from conveyor.client._models import JobStatus
from conveyor.errors import InvalidFlow, UnknownTask
from conveyor.flows import POLICIES, Flow, FlowStep
from conveyor.worker.exceptions import JobFailed, JobTimeout

if TYPE_CHECKING:
    from conveyor.worker.app import App

__all__ = ["Canvas", "Chain", "Chord", "FlowRun", "Group", "Parent", "Signature", "chain",
           "chord", "group"]


class _Sends:
    """`enqueue` and `aenqueue` for every canvas, through the App of its first step."""

    __slots__ = ()

    def enqueue(self, *, keep_seconds: int | None = None) -> FlowRun:
        """Send this flow from synchronous code (see `App.enqueue_flow`)."""
        canvas: Canvas = self  # type: ignore[assignment]
        return _app_of(canvas).enqueue_flow(canvas, keep_seconds=keep_seconds)

    async def aenqueue(self, *, keep_seconds: int | None = None) -> FlowRun:
        """Send this flow from async code."""
        canvas: Canvas = self  # type: ignore[assignment]
        return await _app_of(canvas).aenqueue_flow(canvas, keep_seconds=keep_seconds)


@dataclass(frozen=True, slots=True)
class Signature(_Sends):
    """One task call to run as a step of a flow (`task.s(...)`, `app.signature(...)`)."""

    task: str
    queue: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    on_failure: str = "fail"
    priority: int = 0
    app: App | None = field(default=None, repr=False, compare=False)

    def set(self, *, on_failure: str | None = None, priority: int | None = None
            ) -> Signature:
        """A copy with options: `on_failure` (fail, ignore, continue), `priority` (0-9)."""
        if on_failure is not None and on_failure not in POLICIES:
            raise InvalidFlow(f"on_failure is one of {', '.join(POLICIES)}, not "
                              f"{on_failure!r}.", field="on_failure")
        return replace(self, on_failure=self.on_failure if on_failure is None else on_failure,
                       priority=self.priority if priority is None else priority)

    def __or__(self, other: Canvas) -> Chain:
        return chain(self, other)


@dataclass(frozen=True, slots=True)
class Chain(_Sends):
    """Steps one after the other, each getting the previous one's result."""

    steps: tuple[Canvas, ...]

    def __or__(self, other: Canvas) -> Chain:
        return Chain((*self.steps, other))


@dataclass(frozen=True, slots=True)
class Group(_Sends):
    """Steps that run side by side (fan-out); after it, the next step gets their results."""

    members: tuple[Canvas, ...]


@dataclass(frozen=True, slots=True)
class Chord(_Sends):
    """A group and a callback that runs once every member has ended, with their results."""

    header: Group
    body: Canvas


@dataclass(frozen=True, slots=True)
class Parent(_Sends):
    """BullMQ's parent/child: `parent` runs after its children, with their results; each
    child's `on_failure` says what its failure does to the parent."""

    parent: Signature
    children: tuple[Canvas, ...]


Canvas = Signature | Chain | Group | Chord | Parent
"""Anything that can be enqueued as a flow."""


def chain(*steps: Canvas) -> Chain:
    """Steps one after the other: `chain(a.s(1), b.s(), c.s())` runs c(b(a(1)))."""
    if not steps:
        raise InvalidFlow("A chain needs at least one step.", field="steps")
    return Chain(tuple(steps))


def group(*members: Canvas | Iterable[Canvas]) -> Group:
    """Steps side by side: `group(a.s(1), a.s(2))` or `group(a.s(i) for i in range(9))`."""
    flat: list[Canvas] = []
    for member in members:
        if isinstance(member, Signature | Chain | Group | Chord | Parent):
            flat.append(member)
        else:
            flat.extend(member)
    if not flat:
        raise InvalidFlow("A group needs at least one step.", field="members")
    return Group(tuple(flat))


def chord(header: Group | Iterable[Canvas], body: Canvas) -> Chord:
    """`body` runs once every step of `header` has ended, with the list of their results."""
    return Chord(header if isinstance(header, Group) else group(header), body)


def _app_of(canvas: Canvas) -> App:
    first: Canvas = canvas
    while not isinstance(first, Signature):
        first = (first.steps[0] if isinstance(first, Chain) else first.members[0]
                 if isinstance(first, Group) else first.header if isinstance(first, Chord)
                 else first.parent)
    if first.app is None:
        raise InvalidFlow("This flow's first step was not made by task.s() or "
                          "app.signature(): send it with app.enqueue_flow(...).",
                          field="steps")
    return first.app


def compile_flow(canvas: Canvas) -> tuple[list[FlowStep], list[int]]:
    """The flow's steps, and the positions of its last steps (whose results are the flow's
    result)."""
    steps: list[FlowStep] = []
    tails = _build(canvas, [], "none", steps)
    return steps, tails


def _kind(canvas: Canvas) -> str:
    # How a next step in a chain gets this one's results: one value, or a list.
    if isinstance(canvas, Chain):
        return _kind(canvas.steps[-1])
    if isinstance(canvas, Chord):
        return _kind(canvas.body)
    return "list" if isinstance(canvas, Group) else "one"


def _build(canvas: Canvas, after: list[int], mode: str, steps: list[FlowStep]) -> list[int]:
    if isinstance(canvas, Signature):
        steps.append(FlowStep(canvas.task, canvas.queue, list(canvas.args),
                              dict(canvas.kwargs), list(after), canvas.on_failure,
                              mode if after else "none", canvas.priority))
        return [len(steps) - 1]
    if isinstance(canvas, Chain):
        tails = _build(canvas.steps[0], after, mode, steps)
        for before, step in zip(canvas.steps, canvas.steps[1:]):
            tails = _build(step, tails, _kind(before), steps)
        return tails
    if isinstance(canvas, Group):
        return [t for member in canvas.members for t in _build(member, after, mode, steps)]
    if isinstance(canvas, Chord):
        return _build(canvas.body, _build(canvas.header, after, mode, steps), "list", steps)
    children = [t for child in canvas.children for t in _build(child, after, mode, steps)]
    return _build(canvas.parent, children, "list", steps)


def check_tasks(app: App, steps: Sequence[FlowStep]) -> None:
    """UnknownTask unless every step names a task registered in `app`."""
    for index, step in enumerate(steps):
        if step.task not in app.tasks:
            raise UnknownTask(f"Step {index} names task {step.task!r}, which is not "
                              "registered in this app.", field="task", index=index)


@dataclass(frozen=True, slots=True)
class FlowRun:
    """An enqueued flow: its stored tree (`flow`: ids of every job) and its last steps."""

    flow: Flow
    tails: list[int]
    app: App = field(repr=False, compare=False)

    @property
    def id(self) -> str:
        """The flow's id (`GET /v1/flows/{id}`)."""
        return self.flow.flow_id

    @property
    def job_ids(self) -> list[str]:
        """The job id of each step, in the order the steps were built."""
        return self.flow.job_ids()

    async def tree(self) -> Flow:
        """The flow as stored now (states, results)."""
        return await (await self.app.source()).flows.get(self.id)

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the last steps to end; the result of the last step (a list for a last
        group). Raises JobFailed when one failed, JobTimeout after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.02
        while True:
            nodes = (await self.tree()).nodes
            last = [nodes[i] for i in self.tails]
            for node in last:
                if node.state == "failed":
                    raise JobFailed(node.job_id, "failed", node.error)
            if all(n.state == "succeeded" for n in last):
                results = [n.result for n in last]
                return results[0] if len(results) == 1 else results
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"Flow {self.id} has not ended after {timeout:g} s.")
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.5)

    def wait(self, timeout: float | None = None) -> Any:
        """`result` from synchronous code."""
        return self.app._sync(self.result(timeout))


async def send_flow(app: App, canvas: Canvas, keep_seconds: int | None) -> FlowRun:
    """Check, store and start a flow (`App.aenqueue_flow`)."""
    steps, tails = compile_flow(canvas)
    check_tasks(app, steps)
    for queue in sorted({s.queue for s in steps}):
        await app.ensure_queue(queue)
    source = await app.source()
    flow = await (source.flows.create(steps) if keep_seconds is None
                  else source.flows.create(steps, keep_seconds=keep_seconds))
    tracked = [JobStatus(n.job_id, "queued", n.queue, n.task) for n in flow.nodes
               if n.state == "queued" and app.tasks[n.task].options.track]
    if tracked:
        await source.jobs.status_set_many(tracked)
    return FlowRun(flow, tails, app)
