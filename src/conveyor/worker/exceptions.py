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
