"""The job system's models (`conveyor.jobs`) and their JSON forms on the wire."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.jobs import Grant, JobStatus

__all__ = ["Grant", "JobStatus", "job_status_json", "job_status_of"]


def job_status_json(s: JobStatus) -> dict[str, Any]:
    """The wire form of a status to set."""
    return {"job_id": s.job_id, "status": s.status, "queue": s.queue, "task": s.task,
            "attempts": s.attempts, "error": s.error, "result": s.result,
            "keep_seconds": s.keep_seconds,
            **({} if s.progress is None else {"progress": s.progress})}


def job_status_of(d: Mapping[str, Any]) -> JobStatus:
    """A status from its wire form."""
    return JobStatus(d["job_id"], d["status"], d["queue"], d.get("task"),
                     d.get("attempts", 0), d.get("error"), d.get("result"),
                     d.get("keep_seconds", 86400), d.get("updated_at"), d.get("progress"))
