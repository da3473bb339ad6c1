"""The worker framework: tasks, the run loop, rate limits, retries, cron, the process pool.

Import from here (or `conveyor` for `App`); the submodules are one concept each.
"""

from conveyor.worker.app import App, CronEntry
from conveyor.worker.canvas import FlowRun, Signature, chain, chord, group
from conveyor.worker.context import JobContext, current_job, progress
from conveyor.worker.exceptions import (
    Cancel,
    JobCancelled,
    JobFailed,
    JobNotTracked,
    JobTimeout,
    Retry,
    Snooze,
    TaskTimeout,
)
from conveyor.worker.middleware import Middleware, TraceContext, current_traceparent
from conveyor.worker.rates import Rate
from conveyor.worker.runner import Worker, WorkerOptions
from conveyor.worker.task import Job, JobCall, Received, Task, TaskOptions
from conveyor.worker.unique import Unique

__all__ = [
    "App",
    "Cancel",
    "CronEntry",
    "FlowRun",
    "Job",
    "JobCall",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobNotTracked",
    "JobTimeout",
    "Middleware",
    "Rate",
    "Received",
    "Retry",
    "Signature",
    "Snooze",
    "Task",
    "TaskOptions",
    "TaskTimeout",
    "TraceContext",
    "Unique",
    "Worker",
    "WorkerOptions",
    "chain",
    "chord",
    "current_job",
    "current_traceparent",
    "group",
    "progress",
]
