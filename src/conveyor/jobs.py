"""Values of the job system's broker operations: rate-limit grants and job statuses.

Pure data, like `conveyor.models`; `broker.limits` and `broker.jobs` return them, the
storage dialects build them, and the HTTP client decodes the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["JOB_STATUSES", "RETRYABLE", "Grant", "JobFilter", "JobPage", "JobStatus", "Skipped"]

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "retrying", "dead", "cancelled")
"""Every status a job can be in."""

RETRYABLE = ("dead", "failed")
"""The statuses a job can be retried from (`broker.jobs.retry`)."""


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
    and ignored when a status is written.
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


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which tracked jobs to list, retry or delete: every field given must match (None:
    any). `updated_since` (inclusive) and `updated_until` (exclusive) are ms since the
    epoch, compared with the status's last update."""

    state: str | None = None
    task: str | None = None
    queue: str | None = None
    updated_since: int | None = None
    updated_until: int | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of jobs, newest update first; `next` is the opaque cursor of the page
    after it (None: this was the last)."""

    jobs: list[JobStatus]
    next: str | None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A job a bulk action left alone, with the error code and sentence that say why."""

    job_id: str
    code: str
    message: str
