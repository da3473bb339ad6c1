"""Long-poll wake-ups: local events per queue, fed by this process and by the others'."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from conveyor.errors import StorageUnavailable
from conveyor.reach import Reach
from conveyor.tasks import stop_task

log = logging.getLogger("conveyor.broker")

RETRY_PAUSES = (0.05, 0.25, 1.0)
"""Pauses before the tries of a cross-process signal that failed again (a pooled
connection the outage broke fails once; the next one is fresh)."""


class Wakeups:
    """One asyncio.Event per queue, replaced each time it fires.

    A receiver takes `ticket(queue)` *before* it looks for messages and waits on that
    ticket afterwards, so a send that lands in between is never missed.
    """

    def __init__(self) -> None:
        self._events: dict[int, asyncio.Event] = {}

    def ticket(self, queue_id: int) -> asyncio.Event:
        """The event the next notify of this queue will set."""
        event = self._events.get(queue_id)
        if event is None:
            event = self._events[queue_id] = asyncio.Event()
        return event

    def notify(self, queue_id: int | None) -> None:
        """Wake receivers of one queue (None: of every queue)."""
        if queue_id is None:
            events = list(self._events.values())
            self._events.clear()
        else:
            found = self._events.pop(queue_id, None)
            events = [found] if found is not None else []
        for event in events:
            event.set()

    @staticmethod
    async def wait(ticket: asyncio.Event, timeout: float,
                   abandoned: asyncio.Event | None = None) -> bool:
        """Wait until the ticket fires or the timeout passes (or `abandoned` is set); True
        when the ticket fired."""
        if ticket.is_set():
            return True
        if abandoned is None:
            try:
                await asyncio.wait_for(ticket.wait(), timeout)
            except TimeoutError:
                return False
            return True
        waits = [asyncio.create_task(ticket.wait()), asyncio.create_task(abandoned.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return ticket.is_set()


class Throttle:
    """Leading- and trailing-edge throttle of cross-process signals, per queue.

    The first signal goes out at once; more within `interval` collapse into one sent
    when the interval ends, so a burst of small sends costs two signals, not hundreds.

    A signal the database cannot take now (`StorageUnavailable`) is tried again in the
    background (`RETRY_PAUSES`), never raised: it follows a write that already committed,
    and a 503 for it would only invite a duplicate resend. The outage is logged once
    (`conveyor.reach`). If every try fails, the other processes' long polls still
    find the message: their LISTEN connection, lost in the same outage, looks at every
    queue again when it reconnects, and `Watchers` look at waited-on queues every
    second. This process's own long polls were woken before the signal (`Broker.signal`).
    """

    def __init__(self, send: Callable[[int], Awaitable[None]], interval: float = 0.001,
                 retry_pauses: tuple[float, ...] = RETRY_PAUSES) -> None:
        self._send = send
        self._interval = interval
        self._retry_pauses = retry_pauses
        self._last: dict[int, float] = {}
        self._pending: dict[int, asyncio.Task[None]] = {}
        self.reach = Reach("the database")

    def take(self, queue_id: int) -> bool:
        """Take the leading edge for a signal the caller sends itself (with its batch):
        True when one may go out now; False when one went out within the interval (then
        call the throttle as usual, for the trailing one)."""
        now = time.monotonic()
        if now - self._last.get(queue_id, 0.0) >= self._interval:
            self._last[queue_id] = now
            return True
        return False

    async def __call__(self, queue_id: int) -> None:
        """Signal a queue, now or at the end of the current interval (or, when the
        database cannot take it now, again in the background)."""
        now = time.monotonic()
        last = self._last.get(queue_id, 0.0)
        if now - last >= self._interval:
            self._last[queue_id] = now
            if not await self._try(queue_id) and queue_id not in self._pending:
                self._later(queue_id, self._retry_pauses[0] if self._retry_pauses else 0.0,
                            self._retry_pauses[1:])
        elif queue_id not in self._pending:
            self._later(queue_id, self._interval - (now - last), self._retry_pauses)

    def _later(self, queue_id: int, delay: float, pauses: tuple[float, ...]) -> None:
        self._pending[queue_id] = asyncio.create_task(self._trailing(queue_id, delay, pauses))

    async def _try(self, queue_id: int) -> bool:
        """Send one signal; False (logged once per outage) when the database cannot take
        it now."""
        asked = self.reach.now()
        try:
            await self._send(queue_id)
        except StorageUnavailable as exc:
            self.reach.error(exc, "signalling queue %d to the other processes failed",
                             queue_id)
            return False
        self.reach.ok(asked)
        return True

    async def _trailing(self, queue_id: int, delay: float, pauses: tuple[float, ...]
                        ) -> None:
        # Nobody awaits this task: whatever it meets ends here, logged, so that no
        # "Task exception was never retrieved" (and no lost signal unsaid) is left behind.
        try:
            await asyncio.sleep(delay)
            for pause in (*pauses, None):
                self._last[queue_id] = time.monotonic()
                if await self._try(queue_id) or pause is None:
                    return
                await asyncio.sleep(pause)
        except Exception:
            log.exception("signalling queue %d to the other processes failed", queue_id)
        finally:
            self._pending.pop(queue_id, None)

    async def close(self) -> None:
        """Cancel trailing signals (nobody is left to wake on shutdown)."""
        for task in list(self._pending.values()):
            task.cancel()
        self._pending.clear()


class Watchers:
    """Wake-ups for what no send signals: a message visible by time alone (its delay, or a
    lease, ran out). While receives wait on a queue, one watcher per queue and process
    checks every `interval` with `ready(queue_id)` (a few index seeks) and wakes them, so
    a thousand idle long polls cost one query a second, not a thousand claims."""

    def __init__(self, wakeups: Wakeups, ready: Callable[[int], Awaitable[bool]],
                 interval: float) -> None:
        self._wakeups = wakeups
        self._ready = ready
        self._interval = interval
        self._waiting: dict[int, int] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.reach = Reach("the database")

    def enter(self, queue_id: int) -> None:
        """A receive starts waiting on a queue."""
        self._waiting[queue_id] = self._waiting.get(queue_id, 0) + 1
        found = self._tasks.get(queue_id)
        if found is None or found.done():  # a finished one may not be forgotten yet
            task = asyncio.create_task(self._watch(queue_id))
            self._tasks[queue_id] = task
            task.add_done_callback(functools.partial(self._forget, queue_id))

    def leave(self, queue_id: int) -> None:
        """A receive stops waiting (its watcher ends at its next look)."""
        left = self._waiting.get(queue_id, 1) - 1
        if left > 0:
            self._waiting[queue_id] = left
        else:
            self._waiting.pop(queue_id, None)

    def _forget(self, queue_id: int, task: asyncio.Task[None]) -> None:
        if self._tasks.get(queue_id) is task:
            del self._tasks[queue_id]

    async def _watch(self, queue_id: int) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if queue_id not in self._waiting:
                return
            asked = self.reach.now()
            try:
                ready = await self._ready(queue_id)
            except Exception as exc:
                # An outage: one warning, not a traceback a second per waited-on queue.
                self.reach.error(exc, "checking queue %d for visible messages failed",
                                 queue_id, logger=log)
                ready = True  # the waiting receives look (and report) themselves
            else:
                self.reach.ok(asked)
            if ready:
                self._wakeups.notify(queue_id)

    async def close(self) -> None:
        """Stop every watcher."""
        for task in list(self._tasks.values()):
            await stop_task(task)
