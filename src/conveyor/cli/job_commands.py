"""`conveyor job list`, `job show`, `job retry` and `job delete`: the job explorer from a
shell (over HTTP, through `conveyor.client`); no logic beyond the output's shape."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from conveyor.cli.commands import _json_line, _table, _wants_json
from conveyor.client import Client
from conveyor.digits import integer
from conveyor.errors import InvalidInput
from conveyor.http import wire
from conveyor.jobs import JobFilter, check_bulk
from conveyor.models import dumps_json

__all__ = ["add_cancel_parser", "job_cancel", "job_delete", "job_list", "job_retry", "job_show",
           "moment"]


def moment(text: str) -> int:
    """A time flag's value: ms since the epoch, or an ISO 8601 time (UTC when it names no
    zone), as argparse's `type=`."""
    if (ms := integer(text)) is not None:
        return ms
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither ms since the epoch nor an ISO 8601 time "
            "(2026-12-05T21:00:00Z)") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def _where(args: argparse.Namespace) -> JobFilter:
    return JobFilter(args.state, args.task, args.queue, args.updated_since,
                     args.updated_until, args.key, args.created_since, args.created_until)


def _text(value: object) -> str | None:
    return None if value is None else dumps_json(value)[:400]


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def job_show(args: argparse.Namespace, client: Client) -> int:
    """A job's page: status, arguments, attempts with their errors and tracebacks,
    result and timeline."""
    found = client.jobs.detail(args.job_id)
    if _wants_json(args):
        _json_line(wire.job_detail_json(found))
        return 0
    s = found.status
    _table([("job", s.job_id), ("state", s.status), ("queue", s.queue), ("task", s.task),
            ("key", s.key), ("arguments", _text(s.args)),
            ("result", _text(s.result)), ("created", _when(s.created_at)),
            ("updated", _when(s.updated_at))], ("FIELD", "VALUE"))
    if found.attempts:
        print()
        _table([(a.attempt, a.outcome, a.worker, _when(a.started_at), _when(a.ended_at),
                 (a.error or "")[:80] or None) for a in found.attempts],
               ("ATTEMPT", "OUTCOME", "WORKER", "STARTED", "ENDED", "ERROR"))
        for a in found.attempts:
            if a.traceback:
                print(f"\nattempt {a.attempt} traceback:\n{a.traceback.rstrip()}")
    print()
    _table([(_when(at), event, detail) for at, event, detail in found.timeline],
           ("AT", "EVENT", "DETAIL"))
    return 0


def job_list(args: argparse.Namespace, client: Client) -> int:
    """Tracked jobs, newest update first: a table, or one JSON object a line (and the
    cursor of the next page on stderr, for `--after`)."""
    page = client.jobs.list(_where(args), limit=args.limit, after=args.after)
    if _wants_json(args):
        for job in page.jobs:
            _json_line(wire.job_status_json(job))
    else:
        _table([(j.job_id, j.status, j.queue, j.task, j.attempts, _when(j.updated_at),
                 (j.error or "").splitlines()[0][:60] if j.error else None)
                for j in page.jobs],
               ("JOB", "STATE", "QUEUE", "TASK", "ATTEMPTS", "UPDATED", "ERROR"))
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
    """`conveyor job cancel JOB_ID`, or every match of the filters without an id (no
    filter: only with --all)."""
    cancel = job_sub.add_parser(
        "cancel", parents=[common],
        help="cancel a queued, running or retrying job; without JOB_ID, every job "
             "matching --state/--task/--queue (no filter: only with --all)")
    cancel.add_argument("job_id", metavar="JOB_ID", nargs="?")
    cancel.add_argument("--all", action="store_true", dest="all_jobs",
                        help="with no JOB_ID and no filter: cancel every queued, running "
                             "or retrying job")
    cancel.add_argument("--state", help="queued, running or retrying (default: all three)")
    cancel.add_argument("--task", help="one task's jobs")
    cancel.add_argument("--queue", help="one queue's jobs")
    cancel.add_argument("--key", help="one key's jobs")
    for flag, what in (("--created-since", "enqueued at or after"),
                       ("--created-until", "enqueued before"),
                       ("--updated-since", "updated at or after"),
                       ("--updated-until", "updated before")):
        cancel.add_argument(flag, type=moment, metavar="TIME",
                            help=f"{what} TIME (ms since the epoch or ISO 8601)")
    cancel.set_defaults(client=job_cancel)


def job_cancel(args: argparse.Namespace, client: Client) -> int:
    """Cancel one job, or every job matching the filters (page by page); no filter needs
    --all (else exit status 2, as a usage error)."""
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
    where = _where(args)
    try:
        check_bulk(where, args.all_jobs, flag="--all")
    except InvalidInput as exc:
        print(f"conveyor job cancel: error: {exc.message}", file=sys.stderr)
        return 2
    after: str | None = None
    done = skipped = 0
    while True:
        jobs, left, after = client.jobs.cancel_many(where, limit=1000, after=after,
                                                    all_jobs=args.all_jobs)
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
