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
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from conveyor.client.source import Source
from conveyor.models import Message

log = logging.getLogger("conveyor.worker")

CHUNK = 10_000  # ids a check asks about at once (the broker's bound)


class Cancellable(Protocol):
    """A held job, as the check sees it."""

    @property
    def message(self) -> Message: ...

    def cancel(self) -> None: ...


async def watch(source: Source, helds: Callable[[], Sequence[Mapping[str, Cancellable]]],
                interval: float, stopping: asyncio.Event) -> None:
    """Check every `interval` seconds until `stopping` is set."""
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
            try:
                found = await source.jobs.cancel_requests(ids[start:start + CHUNK])
            except Exception:
                log.exception("checking %d jobs for cancel requests failed", len(ids))
                break
            for job_id in found:
                held = by_id.get(job_id)
                if held is not None:
                    log.info("job %s was cancelled from outside", job_id)
                    held.cancel()
