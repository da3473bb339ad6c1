"""The worker's cancel check: which of its jobs were cancelled from outside.

Every `interval` seconds while it holds jobs, a worker asks the broker once about all of
them (`jobs.cancel_requests`, one query per check, however many jobs it runs), and stops
each one named: one not started yet never runs, a running async job is cancelled where it
awaits, a running sync job sees `JobContext.cancelled` (see `conveyor.worker.context`). A
cancel request stays recorded for a while, so a job whose worker died and that another
worker received again is found by that worker's next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from conveyor.client.source import Source
from conveyor.models import Message
from conveyor.reach import Reach
from conveyor.worker.exceptions import Cancel, TaskTimeout

log = logging.getLogger("conveyor.worker")

CHUNK = 10_000  # ids a check asks about at once (the broker's bound)


class Cancellable(Protocol):
    """A held job, as the check sees it."""

    @property
    def message(self) -> Message: ...

    @property
    def cancelled(self) -> bool: ...

    def cancel(self) -> None: ...


async def watch(source: Source, helds: Callable[[], Sequence[Mapping[str, Cancellable]]],
                interval: float, stopping: asyncio.Event, reach: Reach | None = None
                ) -> None:
    """Check every `interval` seconds until `stopping` is set (failures are told to
    `reach`, the worker's)."""
    reach = reach or Reach()
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
            return
        by_id = {held.message.id: held
                 for held_map in helds() for held in list(held_map.values())}
        if not by_id:
            continue
        ids = list(by_id)
        for start in range(0, len(ids), CHUNK):
            asked = reach.now()
            try:
                found = await source.jobs.cancel_requests(ids[start:start + CHUNK])
            except Exception as exc:
                reach.error(exc, "checking %d jobs for cancel requests failed", len(ids))
                break
            reach.ok(asked)
            for job_id in found:
                held = by_id.get(job_id)
                if held is not None:
                    # A sync job that does not look at the flag runs on, and is named by
                    # every check until it ends: said once per run (each run is a new
                    # `Held`). Told again all the same: one whose context did not exist
                    # yet at the first check (its middleware was running) sees it now.
                    if not held.cancelled:
                        log.info("job %s was cancelled from outside", job_id)
                    held.cancel()


class Scoped(Protocol):
    """A running job's cancel state, as `run_cancellable` sees it."""

    cancelled: bool
    scope: asyncio.Timeout | None


async def run_cancellable(running: Awaitable[Any], timeout: float | None, held: Scoped
                          ) -> Any:
    """Await an async job in a timeout scope that `held.cancel()` can end at once (it also
    carries the task's own `timeout`); a cancel ends it with `Cancel`."""
    scope: asyncio.Timeout | None = None
    try:
        async with asyncio.timeout(timeout) as scope:
            held.scope = scope
            if held.cancelled:  # the check came while middleware ran
                scope.reschedule(-1.0)
            return await running
    except TimeoutError:
        if held.cancelled:
            raise Cancel("Cancelled while it ran.") from None
        if timeout is not None and scope is not None and scope.expired():
            raise TaskTimeout(f"The task ran longer than {timeout:g} s.") from None
        raise
    finally:
        held.scope = None
