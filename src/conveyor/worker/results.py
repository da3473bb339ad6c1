"""Waiting for a job's result: `await job.result(timeout=...)`, `job.wait(timeout=...)`.

The job's tracked status is read with a backoff (20 ms, growing by half each time to at
most 0.5 s), so a short job answers within a few tens of milliseconds and a long wait
costs at most two reads a second, the same in-process and through a server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from conveyor.client.source import Source
from conveyor.worker.exceptions import JobCancelled, JobFailed, JobNotTracked, JobTimeout

FIRST_POLL = 0.02
MAX_POLL = 0.5
_FAILED = frozenset({"dead", "failed"})


async def wait_result(source: Source, job_id: str, timeout: float | None) -> Any:
    """The job's result once it has succeeded (None unless its task keeps results).

    Raises JobFailed (dead, failed), JobCancelled, JobNotTracked (no status recorded) or,
    after `timeout` seconds (None: no limit), JobTimeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = FIRST_POLL
    while True:
        status = await source.jobs.status_get(job_id)
        if status is None:
            raise JobNotTracked(f"No status is recorded for job {job_id}: its task needs "
                                "track=True (or keep_result), or the status has expired.")
        if status.status == "succeeded":
            return status.result
        if status.status in _FAILED:
            raise JobFailed(job_id, status.status, status.error)
        if status.status == "cancelled":
            raise JobCancelled(job_id, status.status, status.error)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobTimeout(f"Job {job_id} is still {status.status} after "
                                 f"{timeout:g} s.")
            pause = min(pause, left)
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, MAX_POLL)
