"""`conveyor workers`: the live worker processes, or their cron schedules (no logic)."""

from __future__ import annotations

import argparse
import time

from conveyor.cli.commands import _json_line, _table, _wants_json
from conveyor.client import Client


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """Register `conveyor workers`."""
    workers = sub.add_parser("workers", parents=[common],
                             help="live worker processes (or --schedules: their cron "
                                  "schedules with the next run)")
    workers.add_argument("--schedules", action="store_true",
                         help="list the schedules the live workers run, with the next run")
    workers.set_defaults(client=run)


def run(args: argparse.Namespace, client: Client) -> int:
    """Print the live workers (or their schedules) as a table or JSON lines."""
    from conveyor.dashboard.views import age, when  # the dashboard's formatting
    from conveyor.heartbeats import schedule_json, schedules_of, worker_json

    found = client.workers.list()
    if args.schedules:
        runs = schedules_of(found)
        if _wants_json(args):
            for r in runs:
                _json_line({**schedule_json(r.schedule), "workers": r.workers})
            return 0
        _table([(r.schedule.task, r.schedule.queue, r.schedule.schedule,
                 when(r.schedule.next_run_at), r.workers) for r in runs],
               ("TASK", "QUEUE", "SCHEDULE", "NEXT_RUN", "WORKERS"))
        return 0
    if _wants_json(args):
        for worker in found:
            _json_line(worker_json(worker))
        return 0
    now = time.time()
    _table([(w.worker_id, w.host, w.pid, ",".join(w.queues), f"{w.running}/{w.concurrency}",
             age(now - w.started_at / 1000), f"{age(max(0.0, now - w.beat_at / 1000))} ago")
            for w in found], ("WORKER", "HOST", "PID", "QUEUES", "RUNNING", "UP", "LAST_BEAT"))
    return 0
