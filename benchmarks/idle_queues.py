"""What idle queues cost a server: CPU of `conveyor serve` with N empty queues against a
baseline of the same server with none, measured in the same run; and the size of
`/metrics` and of the dashboard's front page with them.

    python benchmarks/idle_queues.py                          # both backends, 10,000 queues
    python benchmarks/idle_queues.py --backend sqlite --queues 10000 --seconds 30

For each backend: a fresh database, one `conveyor serve` process (no SQS port); its CPU
time (user + system, psutil) over `--seconds` after a warm-up is the baseline; then the
queues are created from this process, and after another warm-up the same measurement is
repeated. On PostgreSQL the CPU of the server's database backends (pg_stat_activity) is
measured the same way, after the server's own, and printed on a line of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import psutil

from conveyor import Broker
from conveyor.storage.factory import storage_from_url

PG_ADMIN = os.environ.get("CONVEYOR_BENCH_POSTGRES",
                          "postgresql://postgres@127.0.0.1:5432/postgres")
WARM_UP = 6.0


def start(url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`conveyor serve` on a free port; its process and base URL."""
    command = [sys.executable, "-m", "conveyor.cli.main", "serve", "--port", "0", "--no-sqs",
               "--database", url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"HTTP API on (http://\S+) ", log.read_text())
        if found:
            try:
                if httpx.get(f"{found.group(1)}/healthz").status_code == 200:
                    return process, found.group(1)
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(log.read_text())


def cpu_share(pids: list[int], seconds: float) -> float:
    """The share of one core these processes used together over the next `seconds`."""
    procs = [psutil.Process(pid) for pid in pids]
    before, began = [_cpu(p) for p in procs], time.monotonic()
    time.sleep(seconds)
    used = sum(_cpu(p) - b for p, b in zip(procs, before))
    return used / (time.monotonic() - began)


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:  # a backend that went away: its time is lost, not negative
        return 0.0
    return float(times.user + times.system)


def backends(url: str) -> list[int]:
    """The pids of the PostgreSQL backends connected to the benchmark's database."""
    async def run() -> list[int]:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1",
                                    url.rsplit("/", 1)[1])
        finally:
            await conn.close()
        return [r[0] for r in rows]
    return asyncio.run(run())


async def create_queues(url: str, count: int) -> None:
    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        for start in range(0, count, 200):
            await asyncio.gather(*(broker.create_queue(f"idle-{i:05d}")
                                   for i in range(start, min(count, start + 200))))


def measure(backend: str, url: str, queues: int, seconds: float, folder: Path) -> None:
    process, base = start(url, folder / f"{backend}.log")
    try:
        time.sleep(WARM_UP)
        baseline = cpu_share([process.pid], seconds)
        db_baseline = cpu_share(backends(url), seconds) if backend == "postgres" else None
        began = time.monotonic()
        asyncio.run(create_queues(url, queues))
        created = time.monotonic() - began
        time.sleep(WARM_UP)
        loaded = cpu_share([process.pid], seconds)
        db_loaded = cpu_share(backends(url), seconds) if backend == "postgres" else None
        metrics = len(httpx.get(f"{base}/metrics", timeout=60).content)
        page = len(httpx.get(f"{base}/", timeout=60).content)
        print(f"{backend:8} baseline (0 queues) {baseline:6.2%} of a core; with {queues:,} "
              f"idle queues {loaded:6.2%} (+{loaded - baseline:.2%}, "
              f"{loaded / baseline if baseline else float('inf'):.1f}x); /metrics "
              f"{metrics / 1000:,.1f} kB; dashboard page {page / 1000:,.1f} kB "
              f"(queues created in {created:.1f} s)", flush=True)
        if db_baseline is not None and db_loaded is not None:
            print(f"{'':8} its PostgreSQL backends: baseline {db_baseline:6.2%} of a core; "
                  f"with the queues {db_loaded:6.2%} (+{db_loaded - db_baseline:.2%})",
                  flush=True)
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    """Parse the options and measure each backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(f"python {' '.join(sys.argv)}  ({os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f})")
    with tempfile.TemporaryDirectory(prefix="conveyor-idle-") as folder:
        if args.backend in ("sqlite", "both"):
            measure("sqlite", f"sqlite:///{folder}/idle.db", args.queues, args.seconds,
                    Path(folder))
        if args.backend in ("postgres", "both"):
            name = f"conveyor_idle_{uuid.uuid4().hex[:8]}"
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            try:
                measure("postgres", PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", args.queues,
                        args.seconds, Path(folder))
            finally:
                asyncio.run(_admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
