"""What a task can raise to steer its job (everything else is a failure, retried)."""

from __future__ import annotations


class Retry(Exception):
    """Run this job again after `delay` seconds (backoff when None); counts as an attempt."""

    def __init__(self, delay: float | None = None, reason: str | None = None) -> None:
        super().__init__(reason or "retry requested")
        self.delay = delay


class Cancel(Exception):
    """Drop this job now: no retry, no dead letter; its status becomes `cancelled`."""


class TaskTimeout(Exception):
    """The task ran longer than its `timeout` (a failure, retried like any other)."""


class Snooze(Exception):
    """Run this job again after `seconds`, without spending an attempt (waiting on
    something that is not a failure: a resource not ready yet, a window not open)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"snoozed for {seconds:g} s")
        self.seconds = seconds


class JobFailed(Exception):
    """A waited-for job ended without a result (`status` dead or failed; its last
    `error`)."""

    def __init__(self, job_id: str, status: str, error: str | None) -> None:
        super().__init__(f"Job {job_id} ended {status}: {error or 'no error recorded'}")
        self.job_id = job_id
        self.status = status
        self.error = error


class JobCancelled(JobFailed):
    """A waited-for job was cancelled."""


class JobNotTracked(LookupError):
    """No status is recorded for the job: its task needs `track=True` (or `keep_result`
    to also keep the return value), or the status has expired."""


class JobTimeout(TimeoutError):
    """A job did not end within the time waited for it (it may still end later)."""
