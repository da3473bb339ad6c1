"""Lanes: the run loop's jobs on a few long-lived tasks instead of a new task per job.

A task per job costs more than a short job itself (creating it, registering it, scheduling
its first step). A lane is a task that takes jobs from a shared queue one after another,
each in its own copy of the context (as a task of its own would have), so a job's context
variables never leak into the next one. Concurrency still reaches `size`: whenever a lane
takes a job while more wait, it makes sure one more lane is on its way (a "spare"), so if
the job waits on I/O the spare starts the next one; a job that never waits simply lets
its lane go on to the next, and the spare finds nothing and goes back to sleep.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import Any, Generic, TypeVar

from conveyor.tasks import stop_task

T = TypeVar("T")
log = logging.getLogger("conveyor.worker")


class Lanes(Generic[T]):
    """Run `handle(item)` for each pushed item on at most `size` lanes."""

    def __init__(self, handle: Callable[[T], Coroutine[Any, Any, None]], size: int, *,
                 started: Callable[[T, asyncio.Task[None]], None] | None = None) -> None:
        self._handle = handle
        self._size = size
        self._started = started
        self._pending: deque[T] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._lanes: set[asyncio.Task[None]] = set()
        self._spare = False  # a lane was started or woken and has not looked for work yet
        self._closing = False

    def push(self, items: Iterable[T]) -> None:
        """Queue items to run."""
        self._pending.extend(items)
        self._call_spare()

    def take_pending(self) -> list[T]:
        """Items not started yet, removed (shutdown releases them)."""
        items = list(self._pending)
        self._pending.clear()
        return items

    def _call_spare(self) -> None:
        if self._spare or not self._pending or self._closing:
            return
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._spare = True
                return
        if len(self._lanes) < self._size:
            lane = asyncio.create_task(self._run())
            self._lanes.add(lane)
            lane.add_done_callback(self._lanes.discard)
            self._spare = True

    async def _run(self) -> None:
        lane = asyncio.current_task()
        assert lane is not None
        loop = asyncio.get_running_loop()
        while True:
            self._spare = False
            while self._pending:
                item = self._pending.popleft()
                self._call_spare()  # someone to take the next item if this one waits
                if self._started is not None:
                    self._started(item, lane)
                try:
                    await _InContext(self._handle(item), contextvars.copy_context())
                except Exception:  # a bug in handling one item must not end the lane
                    log.exception("a job's handling failed")
            if self._closing:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._idle.append(waiter)
            await waiter

    async def close(self) -> None:
        """Stop the lanes: idle ones at once, busy ones are the caller's to finish or cancel
        first (they end after their current item)."""
        self._closing = True
        for lane in list(self._lanes):
            await stop_task(lane)


class _InContext:
    """Await a coroutine with every step run in `context`, as a task of its own would."""

    __slots__ = ("_context", "_coro")

    def __init__(self, coro: Coroutine[Any, Any, None], context: contextvars.Context) -> None:
        self._coro = coro
        self._context = context

    def __await__(self) -> Generator[Any, Any, None]:
        run, coro = self._context.run, self._coro
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                # The futures the job waits on pass through to the lane's task untouched,
                # so waking, cancelling and timeouts work as they would on a task per job.
                yielded = run(coro.send, value) if error is None else run(coro.throw, error)
            except StopIteration:
                return
            value = error = None
            try:
                value = yield yielded
            except BaseException as exc:  # handed to the job, as its own task would
                error = exc
