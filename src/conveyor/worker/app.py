"""`App`: where tasks and cron schedules are registered and jobs are sent from.

```python
app = App("postgresql://...")      # or sqlite:///file.db, a bare path, or http(s)://server

@app.task(queue="emails", rate_limit="300/m", max_retries=5, timeout=30)
async def send_welcome(user_id: int, email: str) -> None: ...

send_welcome.enqueue(42, "a@example.com")          # sync code
await send_welcome.aenqueue(42, "a@example.com")   # async code
```
Workers run with `conveyor worker module:app` (see `conveyor.worker.runner`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from croniter import croniter

from conveyor.client._models import JobStatus
from conveyor.client.source import Source
from conveyor.clock import Clock
from conveyor.connect import blocks, open_source
from conveyor.errors import InvalidInput, QueueAlreadyExists, QueueNotFound, Unsupported
from conveyor.models import SendEntry, SendResult
from conveyor.worker.canvas import Canvas, FlowRun, Parent, Signature, send_flow
from conveyor.worker.middleware import Middleware, default_middleware
from conveyor.worker.portal import Portal
from conveyor.worker.rates import Rate
from conveyor.worker.results import wait_result
from conveyor.worker.task import DEFAULT_QUEUE, Job, JobCall, Task, TaskOptions
from conveyor.worker.unique import Unique

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

MAX_BATCH = 1000
DLQ_SUFFIX = "-dlq"
DLQ_RETENTION_SECONDS = 14 * 86400


class TaskDecorator(Protocol):
    """What `app.task(...)` returns: turns a function into a `Task`."""

    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class CronEntry:
    """A schedule that enqueues `task` on each tick: a cron expression in a time zone (5
    fields, or 6 with seconds first), or a fixed interval of `every` seconds."""

    def __init__(self, expression: str | None, tz: str, task: Task[Any, Any],
                 every: float | None = None) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if (expression is None) == (every is None):
            raise InvalidInput("Give a cron expression or every=SECONDS, not both.",
                               field="cron")
        if every is not None:
            if isinstance(every, bool) or not isinstance(every, int | float) or \
                    not 1 <= every <= 31 * 86400 or every * 1000 != int(every * 1000):
                raise InvalidInput("every must be 1 s to 31 days, in whole milliseconds.",
                                   field="every")
        elif expression is None or len(expression.split()) not in (5, 6) or \
                not croniter.is_valid(expression, second_at_beginning=True):
            raise InvalidInput(f"Bad cron expression {expression!r}: use 5 fields, e.g. "
                               "'*/5 * * * *', or 6 with seconds first, e.g. "
                               "'*/10 * * * * *'.", field="cron")
        try:
            self.tz = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"Unknown time zone {tz!r}.", field="tz") from None
        self.expression = expression
        self.every_ms = None if every is None else int(every * 1000)
        self.task = task
        self.schedule = (f"{task.name}|{expression}|{tz}" if every is None
                         else f"{task.name}|every {self.every_ms} ms")
        """The schedule's name in the database (ticks are claimed per schedule)."""

    def describe(self) -> str:
        """The schedule as a person writes it: the expression and zone, or the interval."""
        if self.every_ms is not None:
            return f"every {self.every_ms / 1000:g} s"
        return f"{self.expression} ({self.tz.key})"


class App:
    """Tasks, cron schedules and middleware, and the source jobs are sent to.

    `url`: `postgresql://...` or `sqlite:///...` (or a bare path) runs the broker in this
    process; `http(s)://...` talks to a conveyor server; None is the embedded SQLite file.
    `clock` (ms) is for tests. `visibility_timeout` is the lease a worker takes on each job
    (extended while the job runs).
    """

    def __init__(self, url: str | None = None, *,
                 middleware: Sequence[Middleware] | None = None, clock: Clock | None = None,
                 visibility_timeout: int = 30) -> None:
        self.url = url
        self.clock = clock
        self.visibility_timeout = visibility_timeout
        self.middleware: list[Middleware] = list(
            default_middleware() if middleware is None else middleware)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.crons: list[CronEntry] = []
        self._injected: Source | None = None
        self._sources: dict[asyncio.AbstractEventLoop, Source] = {}
        self._opening: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._ensured: set[str] = set()
        self._max_receives: dict[str, int | None] = {}
        self._portal: Portal | None = None

    def __repr__(self) -> str:
        return f"<App {self.url or 'embedded'} tasks={len(self.tasks)}>"

    # registration -------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(self, *, name: str | None = ..., queue: str = ...,
             rate_limit: str | None = ..., rate_limit_key: Callable[..., str] | None = ...,
             key_rate_limit: str | None = ..., concurrency: int = ...,
             global_concurrency: int | None = ..., max_retries: int = ...,
             retry_backoff: bool | float = ..., retry_backoff_max: float = ...,
             timeout: float | None = ..., priority: int = ..., track: bool = ...,
             keep_result: int | None = ..., unique: Unique | bool | None = ...,
             debounce: int | None = ..., debounce_key: Callable[..., str] | None = ...,
             concurrency_key: Callable[..., str] | None = ...,
             key_concurrency: int | None = ...) -> TaskDecorator: ...

    def task(self, fn: Callable[..., Any] | None = None, *, name: str | None = None,
             queue: str = DEFAULT_QUEUE, rate_limit: str | None = None,
             rate_limit_key: Callable[..., str] | None = None,
             key_rate_limit: str | None = None, concurrency: int = 10,
             global_concurrency: int | None = None, max_retries: int = 3,
             retry_backoff: bool | float = True, retry_backoff_max: float = 600.0,
             timeout: float | None = None, priority: int = 0, track: bool = False,
             keep_result: int | None = None, unique: Unique | bool | None = None,
             debounce: int | None = None, debounce_key: Callable[..., str] | None = None,
             concurrency_key: Callable[..., str] | None = None,
             key_concurrency: int | None = None) -> Any:
        """Register a task (sync or async function).

        - `queue`: where its jobs go (created on first use, with a `<queue>-dlq`).
        - `rate_limit`: `"N/[k](s|m|h)"` (`"300/m"`, `"50/10s"`) across every worker.
        - `rate_limit_key`: a function of the job's arguments naming a key; with it the
          limit (`key_rate_limit`, else `rate_limit`) holds per key.
        - `concurrency`: jobs at once per worker process; `global_concurrency`: across all.
        - `max_retries`: retries after the first run before the job is dead-lettered.
        - `retry_backoff`: True (1 s base) or a base in seconds: exponential with jitter,
          capped at `retry_backoff_max`; False retries at once.
        - `timeout`: seconds a run may take (a sync function's thread cannot be stopped: the
          job fails and is retried while the thread finishes on its own).
        - `priority`: 0-9, higher first. `track`: record status; `keep_result`: also keep
          the return value this many seconds (implies `track`).
        - `unique`: `Unique(by_args=, key=, by_queue=, by_period=, by_state=)` or True (by
          task and arguments): an enqueue whose key a live job holds returns that job
          (`duplicate=True`) and stores nothing; see `conveyor.worker.unique`.
        - `debounce`: a window in seconds; an enqueue inside it replaces the waiting job's
          arguments, and the job runs once, the window after the last enqueue. The key is
          the task, or `debounce_key(*args, **kwargs)`.
        - `concurrency_key`: a function of the job's arguments naming a key (a customer
          id); with `key_concurrency`, at most that many jobs of one key run at once across
          every worker, and workers pass over a full key's jobs to run other keys' (fair:
          see `conveyor.worker.keys`).
        """
        backoff = 0.0 if retry_backoff is False else 1.0 if retry_backoff is True \
            else float(retry_backoff)
        global_rate = Rate.parse(rate_limit) if rate_limit else None
        key_rate = Rate.parse(key_rate_limit) if key_rate_limit else None
        if rate_limit_key is not None and key_rate is None:
            global_rate, key_rate = None, global_rate
        if rate_limit_key is not None and key_rate is None:
            raise InvalidInput("rate_limit_key needs rate_limit or key_rate_limit.",
                               field="rate_limit_key")
        options = TaskOptions(
            queue=queue, rate_limit=global_rate, rate_limit_key=rate_limit_key,
            key_rate_limit=key_rate, concurrency=concurrency,
            global_concurrency=global_concurrency, max_retries=max_retries,
            retry_backoff=backoff, retry_backoff_max=retry_backoff_max, timeout=timeout,
            priority=priority, track=track or keep_result is not None,
            keep_result=keep_result,
            unique=Unique() if unique is True else unique or None,
            debounce=debounce, debounce_key=debounce_key, concurrency_key=concurrency_key,
            key_concurrency=key_concurrency)

        def register(f: Callable[..., Any]) -> Task[Any, Any]:
            task_name = name or f.__name__
            if task_name in self.tasks:
                raise InvalidInput(f"A task named {task_name!r} is already registered.",
                                   field="name")
            task: Task[Any, Any] = Task(self, f, task_name, options)
            self.tasks[task_name] = task
            return task

        return register(fn) if fn is not None else register

    def cron(self, expression: str | None = None, *, every: float | None = None,
             tz: str = "UTC", queue: str = DEFAULT_QUEUE, name: str | None = None,
             **options: Any
             ) -> Callable[[Callable[[], Any] | Task[Any, Any]], Task[Any, Any]]:
        """Enqueue a task (a function of no arguments) on a cron schedule in `tz` (5 fields,
        or 6 with seconds first), or every `every` seconds (ticks aligned to the epoch).

        Each tick is enqueued exactly once however many workers run a scheduler (the tick
        is claimed in the database). Missed ticks: a scheduler enqueues a tick up to
        `Scheduler.grace` (60 s) late, e.g. after a restart (at start, only the latest
        one); ticks missed for longer while no scheduler ran are skipped, never backfilled.
        """
        def register(f: Callable[[], Any] | Task[Any, Any]) -> Task[Any, Any]:
            task = f if isinstance(f, Task) else self.task(name=name, queue=queue,
                                                           **options)(f)
            entry = CronEntry(expression, tz, task, every)
            if any(c.schedule == entry.schedule for c in self.crons):
                raise InvalidInput(f"Schedule {entry.describe()} of {task.name!r} is "
                                   "registered twice.", field="cron")
            self.crons.append(entry)
            return task

        return register

    # the source ---------------------------------------------------------------------
    def use(self, source: Source) -> None:
        """Send and work through this (started) source instead of opening one from the URL
        (tests; an application that already holds a broker)."""
        self._injected = source

    async def source(self) -> Source:
        """The source for the running event loop, opened and started on first use."""
        if self._injected is not None:
            return self._injected
        loop = asyncio.get_running_loop()
        found = self._sources.get(loop)
        if found is not None:
            return found
        lock = self._opening.setdefault(loop, asyncio.Lock())
        async with lock:
            found = self._sources.get(loop)
            if found is None:
                found = open_source(self.url, clock=self.clock)
                await found.start()
                self._sources[loop] = found
        return found

    def wall_time(self) -> float:
        """Now, in seconds (the injected clock's time in tests)."""
        return self.clock() / 1000 if self.clock is not None else time.time()

    async def ensure_queue(self, name: str) -> None:
        """Create a task queue and its dead-letter queue `<name>-dlq` if missing, with
        `max_receive_count` = the largest `max_retries` + 1 of its tasks, so the broker
        dead-letters a job that keeps failing (or keeps killing its worker)."""
        if name in self._ensured:
            return
        source = await self.source()
        retries = [t.options.max_retries for t in self.tasks.values()
                   if t.options.queue == name]
        dlq = name + DLQ_SUFFIX
        await source.create_queue(dlq, {"retention_seconds": DLQ_RETENTION_SECONDS})
        wanted = {"max_receive_count": max(retries, default=3) + 1,
                  "dead_letter_queue": dlq}
        try:
            queue, _ = await source.create_queue(
                name, {**wanted, "visibility_timeout": self.visibility_timeout})
        except QueueAlreadyExists:
            queue = await source.get_queue(name)
            if queue.attributes.dead_letter_queue is None:
                queue = await source.update_queue(name, wanted)
        self._max_receives[name] = queue.attributes.max_receive_count
        self._ensured.add(name)

    def max_receives(self, queue: str) -> int | None:
        """The queue's `max_receive_count` as last seen by `ensure_queue`."""
        return self._max_receives.get(queue)

    # sending ------------------------------------------------------------------------
    async def send(self, calls: Sequence[JobCall], *, connection: object = None
                   ) -> list[Job]:
        """Send jobs (any tasks, any queues), batched per queue; their `Job`s in order.

        `connection`: the application's PostgreSQL connection (asyncpg or psycopg 3, or
        SQLAlchemy's around one) inside a transaction: the jobs and their statuses are
        written there and exist only if it commits. Needs the App on a `postgresql://` URL
        naming the same database. Middleware's `after_enqueue` runs before that commit.
        """
        for middleware in self.middleware:
            for call in calls:
                await middleware.before_enqueue(self, call)
        source = await self.source()
        send_batch: Callable[[str, Sequence[SendEntry]], Awaitable[list[SendResult]]]
        send_batch = source.send
        set_statuses: Callable[[Sequence[JobStatus]], Awaitable[None]]
        set_statuses = source.jobs.status_set_many
        if connection is not None:
            from conveyor.broker.broker import Broker

            if not isinstance(source, Broker):
                raise Unsupported("Transactional enqueue (connection=...) needs the App on "
                                  "the database (postgresql://...), not on a server URL.")
            send_batch = functools.partial(source.send, connection=connection)
            set_statuses = functools.partial(source.jobs.status_set_many,
                                             connection=connection)
        jobs: list[Job | None] = [None] * len(calls)
        by_queue: dict[str, list[int]] = {}
        for index, call in enumerate(calls):
            by_queue.setdefault(call.queue, []).append(index)
        for queue, indexes in by_queue.items():
            for start in range(0, len(indexes), MAX_BATCH):
                chunk = indexes[start:start + MAX_BATCH]
                entries = [calls[i].entry() for i in chunk]
                try:
                    results = await send_batch(queue, entries)
                except QueueNotFound:
                    self._ensured.discard(queue)
                    await self.ensure_queue(queue)
                    results = await send_batch(queue, entries)
                for i, result in zip(chunk, results):
                    jobs[i] = Job(result.id, calls[i].task, queue, result.duplicate, self)
        done = [job for job in jobs if job is not None]
        # A duplicate changed nothing: its job's status is the earlier enqueue's.
        tracked = [(c, j) for c, j in zip(calls, done)
                   if not j.duplicate and self._tracks(c.task)]
        if tracked:
            await set_statuses([
                JobStatus(j.id, "queued", j.queue, j.task, key=self._key_of(c),
                          args={"args": list(c.args), "kwargs": dict(c.kwargs)})
                for c, j in tracked])
        for middleware in reversed(self.middleware):
            for call, job in zip(calls, done):
                await middleware.after_enqueue(self, call, job)
        return done

    def _key_of(self, call: JobCall) -> str | None:
        """The job's key for the explorer: its task's per-key value, else its unique key."""
        if call.key is not None and len(call.key) <= 200:  # concurrency_key (worker.keys)
            return call.key
        found = self.tasks.get(call.task)
        per_key = found.options.rate_limit_key if found is not None else None
        if per_key is not None:
            try:
                key = per_key(*call.args, **call.kwargs)
            except Exception:  # the worker reports it when it runs the job
                key = None
            if isinstance(key, str) and 1 <= len(key) <= 200:
                return key
        return call.claim.key if call.claim is not None and len(call.claim.key) <= 200 \
            else None

    # flows (conveyor.worker.canvas) ------------------------------------------------
    def signature(self, task: str, args: Sequence[Any] = (),
                  kwargs: Mapping[str, Any] | None = None, *, queue: str | None = None
                  ) -> Signature:
        """A step of a flow by task name (`task.s(...)` when you hold the task); the queue
        defaults to the registered task's. The name is checked when the flow is sent."""
        found = self.tasks.get(task)
        return Signature(task, queue or (found.options.queue if found else DEFAULT_QUEUE),
                         tuple(args), dict(kwargs or {}), app=self)

    def flow(self, parent: Signature, children: Sequence[Canvas]) -> Parent:
        """BullMQ's parent/child: `parent` runs after every child, with their results (see
        `conveyor.worker.canvas`). Send it with `.enqueue()` or `await .aenqueue()`."""
        if not children:
            raise InvalidInput("A flow's parent needs at least one child.", field="children")
        return Parent(parent, tuple(children))

    async def aenqueue_flow(self, canvas: Canvas, *, keep_seconds: int | None = None
                            ) -> FlowRun:
        """Send a chain, group, chord or parent/child flow in one transaction; its
        `FlowRun` (ids, tree, result). UnknownTask or InvalidFlow first if it is bad."""
        return await send_flow(self, canvas, keep_seconds)

    def enqueue_flow(self, canvas: Canvas, *, keep_seconds: int | None = None) -> FlowRun:
        """`aenqueue_flow` from synchronous code."""
        return self._sync(self.aenqueue_flow(canvas, keep_seconds=keep_seconds))

    def _tracks(self, task: str) -> bool:
        found = self.tasks.get(task)
        return found is not None and found.options.track

    def send_sync(self, calls: Sequence[JobCall], *, connection: object = None
                  ) -> list[Job]:
        """`send` from synchronous code (through a private event loop thread);
        `connection` is then a synchronous one (psycopg's `Connection`)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("enqueue() blocks: in async code use `await task.aenqueue()`.")
        if connection is not None and not blocks(connection):
            raise InvalidInput("enqueue(connection=...) from synchronous code takes a "
                               "psycopg Connection; with an async one use aenqueue_with.",
                               field="connection")
        return self._sync(self.send(calls, connection=connection))

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("This call blocks: in async code await its async form.")
        if self._portal is None:
            self._portal = Portal()
        return self._portal.call(coro)

    async def result(self, job_id: str, timeout: float | None = None) -> Any:
        """Wait for a tracked job to end and return its result (see `Job.result`)."""
        return await wait_result(await self.source(), job_id, timeout)

    def result_sync(self, job_id: str, timeout: float | None = None) -> Any:
        """`result` from synchronous code (through the private event loop thread)."""
        return self._sync(self.result(job_id, timeout))

    async def job_status(self, job_id: str) -> JobStatus | None:
        """A tracked job's status (queued, running, succeeded, failed, dead, cancelled)."""
        return await (await self.source()).jobs.status_get(job_id)

    async def cancel(self, job_id: str) -> JobStatus:
        """Cancel a tracked job that is queued, running or retrying; its status after the
        call: `cancelled`, or `running` while its worker stops it (see
        `conveyor.broker.job_cancel`). `JobNotCancellable` once it has ended."""
        return await (await self.source()).jobs.cancel(job_id)

    def cancel_sync(self, job_id: str) -> JobStatus:
        """`cancel` from synchronous code."""
        return self._sync(self.cancel(job_id))

    # closing ------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the source of the running loop (an injected source is the caller's)."""
        loop = asyncio.get_running_loop()
        source = self._sources.pop(loop, None)
        if source is not None:
            await source.close()

    def close(self) -> None:
        """Close the sync portal and its source."""
        if self._portal is not None:
            portal = self._portal
            self._portal = None
            portal.call(self.aclose())
            portal.close()
