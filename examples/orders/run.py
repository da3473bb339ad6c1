"""Create N pending orders, enqueue one job each, run three worker processes until none is
pending, then report: by status, runs per order, orders per process.

    python run.py --database postgresql://user@host/db [--orders 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parent


async def main(url: str, count: int) -> int:
    os.environ["ORDERS_DATABASE_URL"] = url
    sys.path.insert(0, str(HERE))
    import orders

    db = await asyncpg.connect(url)
    await db.execute(orders.SCHEMA)
    await db.execute("TRUNCATE orders, order_runs")
    await db.executemany("INSERT INTO orders (id) VALUES ($1)", [(i,) for i in range(count)])
    await orders.process_order.aenqueue_many([((i,), {}) for i in range(count)])
    await orders.app.aclose()
    workers = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "conveyor.cli.main", "worker", "orders:app",
         "--processes", "3"], cwd=HERE, env={**os.environ, "PYTHONPATH": str(HERE)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    try:
        while await db.fetchval("SELECT count(*) FROM orders WHERE status = 'PENDING'"):
            if time.monotonic() - started > 60:
                print("timed out with orders still pending")
                break
            await asyncio.sleep(0.1)
    finally:
        workers.send_signal(signal.SIGTERM)
        await asyncio.to_thread(workers.wait)
    statuses = dict(await db.fetch("SELECT status, count(*) FROM orders GROUP BY status"))
    twice = await db.fetchval("SELECT count(*) FROM (SELECT order_id FROM order_runs "
                              "GROUP BY order_id HAVING count(*) > 1) t")
    by_pid = await db.fetch("SELECT completed_by, count(*) FROM orders GROUP BY 1 ORDER BY 1")
    await db.close()
    completed, pending = statuses.get("COMPLETED", 0), statuses.get("PENDING", 0)
    print(f"{completed} COMPLETED, {pending} PENDING in {time.monotonic() - started:.1f} s")
    print(f"processed twice: {twice}")
    print("orders per worker process: " + ", ".join(f"{r[0]}: {r[1]}" for r in by_pid))
    return 0 if completed == count and pending == 0 and twice == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="postgresql://...")
    parser.add_argument("--orders", type=int, default=1000)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.database, arguments.orders)))
