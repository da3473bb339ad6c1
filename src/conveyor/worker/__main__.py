"""`python -m conveyor.worker APP [--url URL]`: one worker process (what the pool runs)."""

from __future__ import annotations

import argparse
import logging
import sys

from conveyor.collector import tune_collector
from conveyor.lifeline import die_with
from conveyor.rlimits import raise_open_files_limit
from conveyor.worker.process import run
from conveyor.worker.runner import WorkerOptions


def main() -> int:
    """Parse the few flags a pool passes and run one worker process."""
    parser = argparse.ArgumentParser(prog="python -m conveyor.worker")
    parser.add_argument("app")
    parser.add_argument("--url")
    parser.add_argument("--queues", help="comma-separated (default: every task's queue)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--shutdown-grace", type=float, default=30.0)
    parser.add_argument("--no-cron", action="store_true")
    parser.add_argument("--heartbeat", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--supervisor", type=int, metavar="PID",
                        help="the pool's pid: die when it dies")
    args = parser.parse_args()
    if args.supervisor is not None:
        die_with(args.supervisor)
    raise_open_files_limit()
    tune_collector()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s "
                                                   "%(name)s: %(message)s")
    # httpx logs every request at INFO: a worker on a server would log each long poll
    # (as `conveyor worker` with one process does not).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    options = WorkerOptions(queues=args.queues.split(",") if args.queues else None,
                            batch_size=args.batch_size, shutdown_grace=args.shutdown_grace,
                            scheduler=not args.no_cron, heartbeat_interval=args.heartbeat)
    return run(args.app, args.url, options)


if __name__ == "__main__":
    sys.exit(main())
