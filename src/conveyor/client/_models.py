"""The job system's models (`conveyor.jobs`) and their JSON forms on the wire."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.jobs import Grant, JobAttempt, JobDetail, JobStatus

__all__ = ["Grant", "JobStatus", "job_detail_of", "job_status_json", "job_status_of"]


def job_status_json(s: JobStatus) -> dict[str, Any]:
    """The wire form of a status to set."""
    return {"job_id": s.job_id, "status": s.status, "queue": s.queue, "task": s.task,
            "attempts": s.attempts, "error": s.error, "result": s.result,
            "keep_seconds": s.keep_seconds,
            **({} if s.progress is None else {"progress": s.progress}),
            **{k: v for k, v in (("key", s.key), ("args", s.args), ("worker", s.worker),
                                 ("started_at", s.started_at), ("ended_at", s.ended_at),
                                 ("traceback", s.traceback)) if v is not None}}


def job_status_of(d: Mapping[str, Any]) -> JobStatus:
    """A status from its wire form."""
    return JobStatus(d["job_id"], d["status"], d["queue"], d.get("task"),
                     d.get("attempts", 0), d.get("error"), d.get("result"),
                     d.get("keep_seconds", 86400), d.get("updated_at"), d.get("progress"),
                     key=d.get("key"), args=d.get("args"), created_at=d.get("created_at"))


def job_detail_of(d: Mapping[str, Any]) -> JobDetail:
    """A job's page (`GET /v1/jobs/{id}`) from its wire form."""
    attempts = [JobAttempt(a["attempt"], a["started_at"], a.get("worker"), a.get("ended_at"),
                           a["outcome"], a.get("error"), a.get("traceback"))
                for a in d.get("attempt_history", [])]
    return JobDetail(job_status_of(d), attempts,
                     [(int(e["at"]), e["event"], e["detail"]) for e in d.get("timeline", [])])
