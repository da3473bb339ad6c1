"""Middleware: a no-op base class whose hooks run around enqueueing and processing jobs.

Subclass `Middleware`, override the hooks you need, pass instances to `App(middleware=...)`.
Hooks run in order on the way in (`before_*`) and in reverse on the way out (`after_*`). An
exception from `before_enqueue` stops the send; from `before_process` it fails the job.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.models import MessageAttribute
from conveyor.worker.task import Job, JobCall, Received

if TYPE_CHECKING:
    from conveyor.worker.app import App


class Middleware:
    """Hooks around a job's life; every hook does nothing by default."""

    async def before_enqueue(self, app: App, call: JobCall) -> None:
        """A job is about to be sent (change `call` to change what is sent)."""

    async def after_enqueue(self, app: App, call: JobCall, job: Job) -> None:
        """A job was sent."""

    async def before_process(self, app: App, job: Received) -> None:
        """A worker is about to run a job."""

    async def after_process(self, app: App, job: Received, result: Any,
                            exception: BaseException | None) -> None:
        """A job ran: `exception` is None on success (including Retry and Cancel)."""


TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current_traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "conveyor_traceparent", default=None)
"""The W3C trace context of the running job (or set by the application around enqueues)."""


def child_traceparent(parent: str | None) -> str:
    """A traceparent for a new span: in `parent`'s trace, or a new sampled trace."""
    match = _TRACEPARENT.match(parent or "")
    trace_id = match.group(1) if match else os.urandom(16).hex()
    flags = match.group(3) if match else "01"
    return f"00-{trace_id}-{os.urandom(8).hex()}-{flags}"


class TraceContext(Middleware):
    """Carry the W3C `traceparent` from producer to worker in a message attribute.

    On enqueue the job gets a child of `current_traceparent` (a new trace when
    `start_traces` and there is none); while a job runs, `current_traceparent` is the job's,
    so jobs enqueued by a job join its trace.
    """

    def __init__(self, *, start_traces: bool = True) -> None:
        self.start_traces = start_traces

    async def before_enqueue(self, app: App, call: JobCall) -> None:
        parent = current_traceparent.get()
        if TRACEPARENT in call.attributes or (parent is None and not self.start_traces):
            return
        call.attributes[TRACEPARENT] = MessageAttribute("String", child_traceparent(parent))

    async def before_process(self, app: App, job: Received) -> None:
        attribute = job.message.attributes.get(TRACEPARENT)
        if attribute is not None and isinstance(attribute.value, str):
            current_traceparent.set(attribute.value)


def default_middleware() -> Sequence[Middleware]:
    """What an App uses unless told otherwise: trace context propagation."""
    return (TraceContext(),)
