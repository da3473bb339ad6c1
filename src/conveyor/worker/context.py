"""The running job, as its own code sees it: `progress(value)` reports how far it got.

```python
from conveyor.worker import progress

@app.task(track=True)
def import_rows(path: str) -> None:
    for done, chunk in enumerate(chunks(path), 1):
        ...
        progress({"chunks": done})     # on the job's status: GET /v1/jobs/{id}
```
A report is written with the job's next status batch, from async or sync (thread) code
alike. A job cancelled from outside (`POST /v1/jobs/{id}/cancel`) while it runs: an async
one is cancelled where it awaits; a sync one sees `current_job().cancelled` turn True and
can stop by calling `raise_if_cancelled()` between steps. Only tracked tasks (`track=True`
or `keep_result`) have a current job (and can be cancelled: a cancel finds a job by its
status): elsewhere `current_job()` is None and `progress()` does nothing, so plain jobs pay
nothing for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from conveyor.jobs import JobStatus
from conveyor.worker.exceptions import Cancel

__all__ = ["JobContext", "current_job", "progress"]


@dataclass(frozen=True, slots=True)
class JobContext:
    """The (tracked) job this code runs as: its id, task, queue and attempt (1 on the
    first run)."""

    id: str
    task: str
    queue: str
    attempt: int
    keep_seconds: int
    _write: Callable[[JobStatus], None]
    _loop: asyncio.AbstractEventLoop
    _thread: int
    _cancel: threading.Event = field(default_factory=threading.Event)
    # The run a report belongs to (its start, ms, and worker): storage tells a late report
    # of an older run, after a retry reopened the job, from the current run's by them.
    started_at: int | None = None
    worker: str | None = None

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled from outside (set by the worker's check)."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise `Cancel` if the job was cancelled from outside: the job ends `cancelled`."""
        if self._cancel.is_set():
            raise Cancel("Cancelled while it ran.")

    def progress(self, value: Any) -> None:
        """Record `value` (any JSON value) as the job's progress report."""
        status = JobStatus(self.id, "running", self.queue, self.task, self.attempt,
                           keep_seconds=self.keep_seconds, progress=value,
                           worker=self.worker, started_at=self.started_at)
        if threading.get_ident() == self._thread:
            self._write(status)
        else:  # a sync task's worker thread: hand it to the event loop
            self._loop.call_soon_threadsafe(self._write, status)


CURRENT: ContextVar[JobContext | None] = ContextVar("conveyor_current_job", default=None)
"""The running job of this context (set by the worker around each run)."""


def current_job() -> JobContext | None:
    """The tracked job running this code (None outside one)."""
    return CURRENT.get()


def progress(value: Any) -> None:
    """Report the running job's progress (any JSON value); nothing outside a tracked job."""
    job = CURRENT.get()
    if job is not None:
        job.progress(value)
