"""Values of the job system's broker operations: rate-limit grants and job statuses.

Pure data, like `conveyor.models`; `broker.limits` and `broker.jobs` return them, the
storage dialects build them, and the HTTP client decodes the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["JOB_STATUSES", "Grant", "JobStatus"]

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "retrying", "dead", "cancelled")
"""Every status a job can be in."""


@dataclass(frozen=True, slots=True)
class Grant:
    """Tokens granted by a rate limit (0 up to what was asked for), and how many seconds
    until the bucket holds another token (0.0 when it holds one now)."""

    granted: int
    retry_after: float


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job's recorded status, kept for `keep_seconds` after its last update.

    `result` is any JSON value; `updated_at` (ms since the epoch) is set by the database
    and ignored when a status is written. `progress` is the last progress report of a
    running job (any JSON value); a write without one keeps the stored report.
    """

    job_id: str
    status: str
    queue: str
    task: str | None = None
    attempts: int = 0
    error: str | None = None
    result: Any = None
    keep_seconds: int = 86_400
    updated_at: int | None = None
    progress: Any = None
