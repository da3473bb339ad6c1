"""`conveyor worker APP`: arguments to a worker process or a supervised pool (no logic)."""

from __future__ import annotations

import argparse
import asyncio
import logging


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `conveyor worker`."""
    worker = sub.add_parser("worker", help="run the jobs of an App (module:attribute)")
    worker.add_argument("app", metavar="MODULE:APP", help="e.g. myapp:app")
    worker.add_argument("--url", "--database", dest="url", metavar="URL",
                        help="database or server URL (default: the App's)")
    worker.add_argument("--processes", type=int, default=1, metavar="N",
                        help="worker processes to start (default 1)")
    worker.add_argument("--autoscale", metavar="MIN,MAX", type=_bounds,
                        help="grow and shrink the pool with the backlog")
    worker.add_argument("--scale-interval", type=float, default=5.0, metavar="SECONDS",
                        help="how often the autoscaler looks at the queues (default 5)")
    worker.add_argument("--queues", metavar="Q1,Q2", help="only these queues")
    worker.add_argument("--batch-size", type=int, default=100, metavar="N")
    worker.add_argument("--shutdown-grace", type=float, default=30.0, metavar="SECONDS",
                        help="how long running jobs may finish on SIGTERM (default 30)")
    worker.add_argument("--no-cron", action="store_true", help="run no cron scheduler")
    worker.add_argument("--heartbeat", type=_positive, default=5.0, metavar="SECONDS",
                        help="how often each worker reports itself to `conveyor workers` "
                             "(default 5; forgotten after 3 missed beats)")
    worker.set_defaults(run=run)
    schedules = sub.add_parser("schedules", help="an App's cron and interval schedules, "
                               "with their next run")
    schedules.add_argument("app", metavar="MODULE:APP", help="e.g. myapp:app")
    schedules.add_argument("-o", "--output", choices=("table", "json"), default="table")
    schedules.set_defaults(run=list_schedules)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.05 <= value <= 600:
        raise argparse.ArgumentTypeError("write 0.05 to 600 seconds")
    return value


def _bounds(text: str) -> tuple[int, int]:
    low, _, high = text.partition(",")
    try:
        bounds = (int(low), int(high))
    except ValueError:
        raise argparse.ArgumentTypeError("write MIN,MAX, e.g. 1,8") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError("need 1 <= MIN <= MAX")
    return bounds


def run(args: argparse.Namespace) -> int:
    """Run one worker here, or supervise a pool."""
    from conveyor.collector import tune_collector
    from conveyor.rlimits import raise_open_files_limit

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: a worker on a server would log each long poll.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    raise_open_files_limit()  # the pool's processes inherit it
    tune_collector()
    flags = ["--batch-size", str(args.batch_size), "--shutdown-grace",
             str(args.shutdown_grace), "--heartbeat", str(args.heartbeat)]
    if args.queues:
        flags += ["--queues", args.queues]
    if args.no_cron:
        flags.append("--no-cron")
    if args.processes == 1 and args.autoscale is None:
        from conveyor.worker.process import run as run_one
        from conveyor.worker.runner import WorkerOptions

        return run_one(args.app, args.url, WorkerOptions(
            queues=args.queues.split(",") if args.queues else None,
            batch_size=args.batch_size, shutdown_grace=args.shutdown_grace,
            scheduler=not args.no_cron, heartbeat_interval=args.heartbeat))
    from conveyor.worker.pool import Pool, PoolOptions

    pool = Pool(args.app, args.url, PoolOptions(args.processes, args.autoscale,
                                                args.scale_interval, flags))
    return asyncio.run(pool.run())


def list_schedules(args: argparse.Namespace) -> int:
    """Print each schedule of an App: task, queue, schedule and next run (UTC and local)."""
    import time
    from datetime import datetime

    import orjson

    from conveyor.worker.cron import next_tick
    from conveyor.worker.process import load_app

    app = load_app(args.app)
    now = int(time.time() * 1000)
    rows = []
    for entry in app.crons:
        tick = next_tick(entry, now)
        rows.append({"task": entry.task.name, "queue": entry.task.options.queue,
                     "schedule": entry.describe(),
                     "next_run": datetime.fromtimestamp(tick / 1000, entry.tz).isoformat(),
                     "next_run_ms": tick})
    if args.output == "json":
        for row in rows:
            print(orjson.dumps(row).decode())
        return 0
    if not rows:
        print(f"{args.app} has no schedules.")
        return 0
    cells = [["TASK", "QUEUE", "SCHEDULE", "NEXT RUN"]] + [
        [str(r[k]) for k in ("task", "queue", "schedule", "next_run")] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(4)]
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    return 0
