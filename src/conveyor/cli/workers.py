"""`conveyor workers`: the live worker processes, or their cron schedules (no logic)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from conveyor.cli.api import ApiClient
from conveyor.cli.commands import _json_line, _table, _wants_json


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    """Register `conveyor workers`."""
    workers = sub.add_parser("workers", parents=[common],
                             help="live worker processes (or --schedules: their cron "
                                  "schedules with the next run)")
    workers.add_argument("--schedules", action="store_true",
                         help="list the schedules the live workers run, with the next run")
    workers.set_defaults(client=run)


def run(args: argparse.Namespace, api: ApiClient) -> int:
    """Print the live workers (or schedules) as a table or JSON lines."""
    found = api.workers()
    if args.schedules:
        return _schedules(args, found)
    if _wants_json(args):
        for worker in found:
            _json_line(worker)
        return 0
    from conveyor.dashboard.views import age  # the dashboard's formatting, when needed

    now = time.time()
    _table([(w["worker_id"], w["host"], w["pid"], ",".join(w["queues"]),
             f"{w['running']}/{w['concurrency']}", age(now - w["started_at"] / 1000),
             f"{age(max(0.0, now - w['beat_at'] / 1000))} ago") for w in found],
           ("WORKER", "HOST", "PID", "QUEUES", "RUNNING", "UP", "LAST_BEAT"))
    return 0


def _schedules(args: argparse.Namespace, workers: list[dict[str, Any]]) -> int:
    """Each schedule once (every worker with a scheduler lists the same ones)."""
    by_name: dict[str, dict[str, Any]] = {}
    for worker in workers:
        for s in worker["schedules"]:
            seen = by_name.setdefault(s["name"], {**s, "workers": 0})
            seen["workers"] += 1
            seen["next_run_at"] = min(seen["next_run_at"], s["next_run_at"])
    from conveyor.dashboard.views import when

    rows = sorted(by_name.values(), key=lambda s: (s["next_run_at"], s["name"]))
    if _wants_json(args):
        for row in rows:
            _json_line(row)
        return 0
    _table([(s["task"], s["queue"], s["schedule"], when(s["next_run_at"]), s["workers"])
            for s in rows], ("TASK", "QUEUE", "SCHEDULE", "NEXT_RUN", "WORKERS"))
    return 0
