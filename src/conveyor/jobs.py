"""Values of the job system's broker operations: rate-limit grants and job statuses.

Pure data, like `conveyor.models`; `broker.limits` and `broker.jobs` return them, the
storage dialects build them, and the HTTP client decodes the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.errors import InvalidInput

__all__ = ["CRON_LEASE_SECONDS", "CRON_RECLAIM_MS", "JOB_STATUSES", "MAX_KEEP", "RETRYABLE",
           "CronLease", "Grant", "JobAttempt",
           "JobDetail", "JobFilter", "JobPage", "JobStatus", "Skipped", "check_bulk"]

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "retrying", "dead", "cancelled")
"""Every status a job can be in."""

MAX_KEEP = 365 * 86_400
"""The longest a job's status is kept, in seconds."""

RETRYABLE = ("dead", "failed")
"""The statuses a job can be retried from (`broker.jobs.retry`)."""

CRON_LEASE_SECONDS = 10.0
"""How long a won cron tick may go unreported as sent before another scheduler takes it
over (`broker.jobs.cron_lease`)."""

CRON_RECLAIM_MS = 240_000
"""How long after its claim a lapsed cron tick may still be taken over: a minute inside
the 5-minute deduplication window (`storage.base.DEDUP_WINDOW_MS`), which for the first
claimer's send (if it did send, slowly) starts later still, so a second send is dropped."""


@dataclass(frozen=True, slots=True)
class Grant:
    """Tokens granted by a rate limit (0 up to what was asked for), and how many seconds
    until the bucket holds another token (0.0 when it holds one now)."""

    granted: int
    retry_after: float


@dataclass(frozen=True, slots=True)
class CronLease:
    """A scheduler's lease claim of a cron tick (`broker.jobs.cron_lease`).

    `claimed`: this caller holds the tick and is to send its job (then `cron_sent`).
    `pending`: (when not claimed) the tick's holder has not reported it sent yet, so it
    may be taken over once its lease lapses. `lapsed`: other ticks of the schedule whose
    holders neither sent them nor held on to them (killed between claim and send), for
    the caller to claim in turn."""

    claimed: bool
    pending: bool = False
    lapsed: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job's recorded status, kept for `keep_seconds` after its last update.

    `result` is any JSON value; `updated_at` (ms since the epoch) is set by the database
    and ignored when a status is written. `progress` is the last progress report of a
    running job (any JSON value); a write without one keeps the stored report.

    The job explorer's fields: `key` (the task's per-key value, else its unique key) and
    `args` (the call, `{"args": [...], "kwargs": {...}}`) are kept from the first write
    that has them; `created_at` (ms, set by the database at the first write) is read
    only. A worker reports the attempt a status ends (or starts) with `worker`,
    `started_at` and `ended_at` (ms since the epoch, its own clock) and, for a failure,
    the `traceback`; a status without `started_at` records no attempt.
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
    key: str | None = None
    args: Any = None
    created_at: int | None = None
    worker: str | None = None
    started_at: int | None = None
    ended_at: int | None = None
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which tracked jobs to list, retry or delete: every field given must match (None:
    any). The times are ms since the epoch, `*_since` inclusive and `*_until` exclusive,
    compared with the status's last update or its first write (`created_*`)."""

    state: str | None = None
    task: str | None = None
    queue: str | None = None
    updated_since: int | None = None
    updated_until: int | None = None
    key: str | None = None
    created_since: int | None = None
    created_until: int | None = None


def check_bulk(where: JobFilter, all_jobs: bool, *, flag: str = "all: true") -> None:
    """A bulk action's guard (retry, delete, cancel many): a filter with no field given
    takes every job, so the caller must say so (`all_jobs`); 422 `invalid_input` on
    `all` otherwise, naming `flag` (the HTTP field, or the CLI's `--all`)."""
    if all_jobs is not True and where == JobFilter():
        raise InvalidInput(f"Give a filter (state, task, queue, key or a time) or {flag} "
                           "to act on every job.", field="all")


@dataclass(frozen=True, slots=True)
class JobAttempt:
    """One run of a job: its number (the message's receive count), the worker that ran
    it, start and end (ms; `ended_at` None while it runs) and how it ended (running,
    succeeded, retrying, dead, failed, cancelled or snoozed), with a failure's error and
    traceback (the traceback's end is kept when it is long)."""

    attempt: int
    started_at: int
    worker: str | None
    ended_at: int | None
    outcome: str
    error: str | None
    traceback: str | None


@dataclass(frozen=True, slots=True)
class JobDetail:
    """A job's page: its status, its attempts (oldest first) and a timeline of
    (ms since the epoch, event, detail), oldest first."""

    status: JobStatus
    attempts: list[JobAttempt]
    timeline: list[tuple[int, str, str]]


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
