"""`conveyor job list`, `job retry` and `job delete`: the job explorer from a shell (over
HTTP, through `conveyor.client`); no logic beyond the output's shape."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from conveyor.cli.commands import _json_line, _table, _wants_json
from conveyor.client import Client
from conveyor.http import wire
from conveyor.jobs import JobFilter

__all__ = ["add_cancel_parser", "job_cancel", "job_delete", "job_list", "job_retry"]


def _where(args: argparse.Namespace) -> JobFilter:
    return JobFilter(args.state, args.task, args.queue)


def job_list(args: argparse.Namespace, client: Client) -> int:
    """Tracked jobs, newest update first: a table, or one JSON object a line (and the
    cursor of the next page on stderr, for `--after`)."""
    page = client.jobs.list(_where(args), limit=args.limit, after=args.after)
    if _wants_json(args):
        for job in page.jobs:
            _json_line(wire.job_status_json(job))
    else:
        _table([(j.job_id, j.status, j.queue, j.task, j.attempts, j.updated_at,
                 (j.error or "").splitlines()[0][:60] if j.error else None)
                for j in page.jobs],
               ("JOB", "STATE", "QUEUE", "TASK", "ATTEMPTS", "UPDATED_AT", "ERROR"))
    if page.next:
        print(f"more: --after {page.next}", file=sys.stderr)
    return 0


def job_retry(args: argparse.Namespace, client: Client) -> int:
    """Send a dead or failed job again under its id."""
    found = client.jobs.retry(args.job_id)
    if _wants_json(args):
        _json_line(wire.job_status_json(found))
    else:
        print(f"job {found.job_id}: {found.status} again on {found.queue}")
    return 0


def job_delete(args: argparse.Namespace, client: Client) -> int:
    """Forget an ended job (and its dead-letter message)."""
    client.jobs.delete(args.job_id)
    if _wants_json(args):
        _json_line({"job_id": args.job_id, "deleted": True})
    else:
        print(f"job {args.job_id}: deleted")
    return 0


def add_cancel_parser(job_sub: Any, common: argparse.ArgumentParser) -> None:
    """`conveyor job cancel JOB_ID`, or every match of the filters without an id."""
    cancel = job_sub.add_parser(
        "cancel", parents=[common],
        help="cancel a queued, running or retrying job; without JOB_ID, every job "
             "matching --state/--task/--queue")
    cancel.add_argument("job_id", metavar="JOB_ID", nargs="?")
    cancel.add_argument("--state", help="queued, running or retrying (default: all three)")
    cancel.add_argument("--task", help="one task's jobs")
    cancel.add_argument("--queue", help="one queue's jobs")
    cancel.set_defaults(client=job_cancel)


def job_cancel(args: argparse.Namespace, client: Client) -> int:
    """Cancel one job, or every job matching the filters (page by page)."""
    if args.job_id is not None:
        found = client.jobs.cancel(args.job_id)
        if _wants_json(args):
            _json_line(wire.job_status_json(found))
        elif found.status == "cancelled":
            print(f"job {found.job_id}: cancelled")
        else:
            print(f"job {found.job_id}: {found.status}; its worker cancels it at its next "
                  "check")
        return 0
    after: str | None = None
    done = skipped = 0
    while True:
        jobs, left, after = client.jobs.cancel_many(_where(args), limit=1000, after=after)
        for job in jobs:
            if _wants_json(args):
                _json_line(wire.job_status_json(job))
        done += len(jobs)
        skipped += len(left)
        if after is None:
            break
    if not _wants_json(args):
        print(f"cancelled {done} jobs (running ones at their worker's next check); "
              f"skipped {skipped}")
    return 0
