"""Tasks: a function, its options, and the wire format of the jobs that run it.

Wire format. A job is one message whose body is the JSON object
`{"task": NAME, "args": [...], "kwargs": {...}}` (arguments must be JSON values), sent to the
task's queue with the task's `priority`; its id is the message id. Attributes carry the W3C
`traceparent` (and anything middleware adds). Any producer in any language can enqueue a job
by sending that body; unknown keys are ignored, so the format may grow.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from conveyor.errors import InvalidInput
from conveyor.models import Body, Claim, Message, MessageAttribute, SendEntry
from conveyor.worker.canvas import Signature
from conveyor.worker.flows import FlowRef, flow_ref
from conveyor.worker.keys import check_key_options, job_key
from conveyor.worker.rates import Rate
from conveyor.worker.unique import Unique, debounce_claim, unique_claim

if TYPE_CHECKING:
    from conveyor.worker.app import App

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How a task's jobs run. See `App.task` for each option."""

    queue: str = DEFAULT_QUEUE
    rate_limit: Rate | None = None
    rate_limit_key: Callable[..., str] | None = None
    key_rate_limit: Rate | None = None
    concurrency: int = 10
    global_concurrency: int | None = None
    max_retries: int = 3
    retry_backoff: float = 1.0
    retry_backoff_max: float = 600.0
    timeout: float | None = None
    priority: int = 0
    track: bool = False
    keep_result: int | None = None
    unique: Unique | None = None
    debounce: int | None = None
    debounce_key: Callable[..., str] | None = None
    concurrency_key: Callable[..., str] | None = None
    key_concurrency: int | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise InvalidInput("concurrency must be at least 1.", field="concurrency")
        if self.global_concurrency is not None and self.global_concurrency < 1:
            raise InvalidInput("global_concurrency must be at least 1.",
                               field="global_concurrency")
        if not 0 <= self.max_retries <= 999:
            raise InvalidInput("max_retries must be between 0 and 999.", field="max_retries")
        if not 0 <= self.priority <= 9:
            raise InvalidInput("priority must be between 0 and 9.", field="priority")
        if self.debounce is not None and (
                isinstance(self.debounce, bool) or not isinstance(self.debounce, int)
                or not 1 <= self.debounce <= 366 * 86_400):
            raise InvalidInput("debounce must be whole seconds, 1 s to 366 days.",
                               field="debounce")
        if self.debounce_key is not None and self.debounce is None:
            raise InvalidInput("debounce_key needs debounce.", field="debounce_key")
        if self.debounce is not None and self.unique is not None:
            raise InvalidInput("A task is unique or debounced, not both.", field="debounce")
        check_key_options(self.queue, self.concurrency_key, self.key_concurrency)


@dataclass(frozen=True, slots=True)
class Job:
    """An enqueued job: its id (the message id), and `duplicate` when nothing new was
    stored: a deduplication id or a unique job's key matched an earlier job (this is that
    job), or a debounced enqueue replaced the waiting job's arguments (same id)."""

    id: str
    task: str
    queue: str
    duplicate: bool = False
    app: App | None = field(default=None, repr=False, compare=False)

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the job to end; its result (None unless the task has `keep_result`).

        Raises `JobFailed` (dead), `JobCancelled`, `JobNotTracked` (the task does not
        track status) or, after `timeout` seconds, `JobTimeout` (see `worker.results`)."""
        return await self._app().result(self.id, timeout)

    def wait(self, timeout: float | None = None) -> Any:
        """`result` from synchronous code."""
        return self._app().result_sync(self.id, timeout)

    async def cancel(self) -> str:
        """Cancel the job (see `App.cancel`); its status after the call."""
        return (await self._app().cancel(self.id)).status

    def cancel_sync(self) -> str:
        """`cancel` from synchronous code."""
        return self._app().cancel_sync(self.id).status

    def _app(self) -> App:
        if self.app is None:
            raise RuntimeError("This Job was not made by an App's enqueue; use "
                               "App.result(job_id).")
        return self.app


@dataclass(slots=True)
class JobCall:
    """One job to send: what middleware's `before_enqueue` sees and may change."""

    task: str
    queue: str
    args: Sequence[Any]
    kwargs: Mapping[str, Any]
    delay_seconds: int | None = None
    priority: int = 0
    deduplication_id: str | None = None
    attributes: dict[str, MessageAttribute] = field(default_factory=dict)
    claim: Claim | None = None
    key: str | None = None  # a per-key limited task's key: the message's group id

    def entry(self) -> SendEntry:
        """The message that carries this job (a unique job's body names its key, so the
        worker can release it)."""
        body: dict[str, Any] = {"task": self.task, "args": list(self.args),
                                "kwargs": dict(self.kwargs)}
        if self.claim is not None and not self.claim.replace:
            body["unique"] = self.claim.key
        return SendEntry(Body.of(body), delay_seconds=self.delay_seconds,
                         attributes=self.attributes, priority=self.priority,
                         deduplication_id=self.deduplication_id, claim=self.claim,
                         group_id=self.key)


@dataclass(slots=True)
class Received:
    """A received job: its message and decoded call; what `before_process` sees."""

    message: Message
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    unique: str | None = None
    flow: FlowRef | None = None  # where a flow's job sits in its flow (worker.flows)

    @property
    def id(self) -> str:
        """The job id (the message id)."""
        return self.message.id

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, ..."""
        return self.message.receive_count

    @classmethod
    def decode(cls, message: Message) -> Received:
        """Read a job from a message; a body not in the wire format raises ValueError."""
        data = message.body.value()
        if not isinstance(data, dict) or not isinstance(data.get("task"), str):
            raise ValueError("The message is not a conveyor job (no 'task').")
        args = data.get("args") or []
        kwargs = data.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("A job's 'args' must be a list and 'kwargs' an object.")
        unique = data.get("unique")
        flow = data.get("flow")  # (a plain job calls nothing more)
        return cls(message, data["task"], args, kwargs,
                   unique if isinstance(unique, str) else None,
                   None if flow is None else flow_ref(data))


def delay_of(delay: float | None, at: datetime | None, now: float) -> int | None:
    """Whole seconds until a job is due, from `delay=` seconds or `at=` (aware datetime)."""
    if delay is not None and at is not None:
        raise InvalidInput("Give delay= or at=, not both.", field="delay")
    if at is not None:
        if at.tzinfo is None:
            raise InvalidInput("at= must be a timezone-aware datetime.", field="at")
        delay = at.timestamp() - now
    if delay is None:
        return None
    return max(0, int(delay + 0.999))


class Task(Generic[P, R]):
    """A function registered with `App.task`. Call it to run it here; `enqueue` it to run
    it on a worker."""

    def __init__(self, app: App, fn: Callable[P, R] | Callable[P, Awaitable[R]], name: str,
                 options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name} on {self.options.queue}>"

    def call(self, args: Sequence[Any], kwargs: Mapping[str, Any], *,
             delay: float | None = None, at: datetime | None = None,
             priority: int | None = None, deduplication_id: str | None = None) -> JobCall:
        """The job for these arguments (not sent yet)."""
        options = self.options
        now = self.app.wall_time()
        delay_seconds = delay_of(delay, at, now)
        claim: Claim | None = None
        if options.unique is not None:
            claim = unique_claim(options.unique, self.name, options.queue, args, kwargs,
                                 now, delay_seconds, options.keep_result or 86_400)
        elif options.debounce is not None:
            if delay_seconds is not None:
                raise InvalidInput("A debounced task runs its window after the last "
                                   "enqueue: give no delay= or at=.", field="delay")
            claim = debounce_claim(self.name, options.debounce, options.debounce_key,
                                   args, kwargs)
            delay_seconds = options.debounce
        key = None if options.concurrency_key is None else job_key(
            options.concurrency_key, args, kwargs)
        return JobCall(self.name, options.queue, list(args), dict(kwargs), delay_seconds,
                       options.priority if priority is None else priority,
                       deduplication_id, claim=claim, key=key)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A step of a flow (`chain`, `group`, `chord`, `App.flow`) calling this task; a
        step that waits gets results as its first argument (`conveyor.worker.canvas`)."""
        return Signature(self.name, self.options.queue, args, kwargs,
                         priority=self.options.priority, app=self.app)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Send a job from synchronous code; its `Job` (id). In async code, `aenqueue`.

        Use `enqueue_with(args, kwargs, delay=..., at=..., priority=...)` for options.
        """
        return self.app.send_sync([self.call(args, kwargs)])[0]

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Send a job from async code."""
        return (await self.app.send([self.call(args, kwargs)]))[0]

    def enqueue_with(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                     *, delay: float | None = None, at: datetime | None = None,
                     priority: int | None = None, deduplication_id: str | None = None,
                     connection: object = None) -> Job:
        """`enqueue` with options: `delay` seconds or `at` a time, a priority, a dedup id;
        `connection`, a psycopg connection whose open transaction the job joins (it exists
        only if that commits; see `App.send`)."""
        call = self.call(args, kwargs or {}, delay=delay, at=at, priority=priority,
                         deduplication_id=deduplication_id)
        return self.app.send_sync([call], connection=connection)[0]

    async def aenqueue_with(self, args: Sequence[Any] = (),
                            kwargs: Mapping[str, Any] | None = None, *,
                            delay: float | None = None, at: datetime | None = None,
                            priority: int | None = None, deduplication_id: str | None = None,
                            connection: object = None) -> Job:
        """`aenqueue` with options; `connection` (asyncpg or psycopg) joins the
        application's open transaction (see `App.send`)."""
        call = self.call(args, kwargs or {}, delay=delay, at=at, priority=priority,
                         deduplication_id=deduplication_id)
        return (await self.app.send([call], connection=connection))[0]

    def enqueue_many(self, calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]], *,
                     delay: float | None = None, at: datetime | None = None,
                     connection: object = None) -> list[Job]:
        """Send many jobs (`[(args, kwargs), ...]`) in batches of up to 1,000."""
        return self.app.send_sync([self.call(a, k, delay=delay, at=at) for a, k in calls],
                                  connection=connection)

    async def aenqueue_many(self, calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
                            *, delay: float | None = None, at: datetime | None = None,
                            connection: object = None) -> list[Job]:
        """Send many jobs from async code."""
        return await self.app.send([self.call(a, k, delay=delay, at=at) for a, k in calls],
                                   connection=connection)
