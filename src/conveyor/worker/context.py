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
alike. Only tracked tasks (`track=True` or `keep_result`) have a current job: elsewhere
`current_job()` is None and `progress()` does nothing, so plain jobs pay nothing for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from conveyor.jobs import JobStatus

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

    def progress(self, value: Any) -> None:
        """Record `value` (any JSON value) as the job's progress report."""
        status = JobStatus(self.id, "running", self.queue, self.task, self.attempt,
                           keep_seconds=self.keep_seconds, progress=value)
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
