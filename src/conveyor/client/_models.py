"""Limit and job-status models, and their JSON forms.

Stand-ins with the broker's agreed names until `broker.limits`/`broker.jobs` land; then
these re-export the core's models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Grant:
    """Tokens granted by a rate limit, and how long to wait before asking again."""

    granted: int
    retry_after: float


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job's status: queued, running, succeeded, failed, dead or cancelled."""

    job_id: str
    status: str
    queue: str
    task: str | None = None
    attempts: int = 0
    error: str | None = None
    result: Any = None
    keep_seconds: int = 86400
    updated_at: int | None = None


def job_status_json(s: JobStatus) -> dict[str, Any]:
    """The wire form of a status to set."""
    return {"job_id": s.job_id, "status": s.status, "queue": s.queue, "task": s.task,
            "attempts": s.attempts, "error": s.error, "result": s.result,
            "keep_seconds": s.keep_seconds}


def job_status_of(d: Mapping[str, Any]) -> JobStatus:
    """A status from its wire form."""
    return JobStatus(d["job_id"], d["status"], d["queue"], d.get("task"),
                     d.get("attempts", 0), d.get("error"), d.get("result"),
                     d.get("keep_seconds", 86400), d.get("updated_at"))
