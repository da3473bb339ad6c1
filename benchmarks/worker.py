# ruff: noqa: ASYNC110, ASYNC220, ASYNC240  (a harness: it polls files and spawns processes)
"""Drain N no-op jobs with conveyor's worker, PgQueuer's worker and a bare pgmq loop.

    python benchmarks/worker.py [--jobs 100000] [--rounds 3] [--postgres URL] [--skip-sqlite]
                                [--conveyor-only]
    python benchmarks/worker.py --fairness    (per-key fairness: see fairness.py)

Each contender gets the same jobs in the same PostgreSQL database (a fresh one named
`conveyor_bench`, created and dropped here) and runs in 1 and 2 processes; conveyor also runs
on an SQLite file. Jobs are enqueued before the clock starts; processes start, connect and
wait at a barrier (conveyor: its queue is paused until the clock starts), so the figure is
drain throughput only. The table gives jobs/s and each row's ratio to PgQueuer and to pgmq
on the same process count.

Also the App the conveyor worker processes load (`worker:app`, URL from BENCH_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from conveyor.worker import App

HERE = Path(__file__).resolve().parent
QUEUE = "bench"

app = App(os.environ.get("BENCH_URL"), middleware=[])


@app.task(queue=QUEUE, concurrency=2000, max_retries=0)
async def noop(i: int) -> None:
    """Nothing: the benchmark measures the machinery."""


# conveyor ---------------------------------------------------------------------------
async def _conveyor_prepare(url: str, jobs: int) -> None:
    producer = App(url, middleware=[])
    producer.tasks.update(app.tasks)
    await producer.ensure_queue(QUEUE)
    source = await producer.source()
    await source.purge_queue(QUEUE)  # type: ignore[attr-defined]
    await source.update_queue(QUEUE, {"paused": True})
    for start in range(0, jobs, 10_000):
        await producer.send([noop.call((i,), {}) for i in range(start, min(jobs, start + 10_000))])
    await producer.aclose()


async def _conveyor_drain(url: str, jobs: int, processes: int) -> float:
    await _conveyor_prepare(url, jobs)
    # The caller's PYTHONPATH after ours: an A/B run points it at another tree's src.
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "BENCH_URL": url, "PYTHONPATH": path}
    command = [sys.executable, "-m", "conveyor.cli.main", "worker", "worker:app",
               "--processes", str(processes), "--batch-size", "1000", "--no-cron"]
    with tempfile.TemporaryFile() as log:
        pool = subprocess.Popen(command, env=env, cwd=HERE, stdout=subprocess.DEVNULL,
                                stderr=log)
        watcher = App(url, middleware=[])
        source = await watcher.source()
        try:
            # Every process has started (it says "consuming") and polls the paused queue:
            # on a loaded machine a fixed wait sometimes started the clock with one of two.
            deadline = time.monotonic() + 60
            while _said(log, b": consuming ") < processes:
                if time.monotonic() > deadline or pool.poll() is not None:
                    raise RuntimeError("the conveyor workers did not start")
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            started = time.perf_counter()
            await source.update_queue(QUEUE, {"paused": False})
            # An exact count every few ms would cost the database more than the drain does:
            # one indexed row tells whether anything is left.
            while await source.peek(QUEUE, 1):  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)
            return time.perf_counter() - started
        finally:
            pool.terminate()
            pool.wait()
            await watcher.aclose()


def _said(log: Any, marker: bytes) -> int:
    """How many times the workers' log says `marker` so far (pread: the workers share the
    file's offset, which a seek here would move under their writes)."""
    fd = log.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).count(marker)


# PgQueuer ---------------------------------------------------------------------------
async def _pgqueuer_prepare(dsn: str, jobs: int) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(conn))
    with contextlib.suppress(Exception):  # installed by an earlier round
        await queries.install()
    await conn.execute("TRUNCATE pgqueuer")
    for start in range(0, jobs, 10_000):
        n = min(jobs, start + 10_000) - start
        await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
    await conn.close()


async def _pgqueuer_child(dsn: str, go: Path) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(dsn)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("noop")
    async def _noop(job: object) -> None:
        return None

    while not go.exists():
        await asyncio.sleep(0.005)
    await qm.run(batch_size=100, mode=QueueExecutionMode.drain)
    await conn.close()


# pgmq ---------------------------------------------------------------------------------
async def _pgmq_prepare(dsn: str, jobs: int) -> None:
    import asyncpg
    from pgmq.install import get_embedded_install_sql

    conn = await asyncpg.connect(dsn)
    exists = await conn.fetchval("SELECT to_regnamespace('pgmq') IS NOT NULL")
    if not exists:
        await conn.execute(get_embedded_install_sql())
    await conn.execute("SELECT pgmq.drop_queue('bench') WHERE EXISTS (SELECT 1 FROM "
                       "pgmq.meta WHERE queue_name = 'bench')")
    await conn.execute("SELECT pgmq.create('bench')")
    for start in range(0, jobs, 10_000):
        n = min(jobs, start + 10_000) - start
        await conn.execute("SELECT pgmq.send_batch('bench', $1::jsonb[])",
                           [f'{{"i": {start + k}}}' for k in range(n)])
    await conn.close()


async def _pgmq_child(dsn: str, go: Path) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    while not go.exists():
        await asyncio.sleep(0.005)
    while True:
        rows = await conn.fetch("SELECT msg_id FROM pgmq.read('bench', 30, 1000)")
        if not rows:
            break
        await conn.execute("SELECT pgmq.delete('bench', $1::bigint[])",
                           [r["msg_id"] for r in rows])
    await conn.close()


async def _peer_drain(kind: str, dsn: str, jobs: int, processes: int) -> float:
    await (_pgqueuer_prepare if kind == "pgqueuer" else _pgmq_prepare)(dsn, jobs)
    with tempfile.TemporaryDirectory() as tmp:
        go = Path(tmp) / "go"
        children = [subprocess.Popen([sys.executable, __file__, "--child", kind,
                                      "--postgres", dsn, "--go", str(go)])
                    for _ in range(processes)]
        await asyncio.sleep(2.5)
        started = time.perf_counter()
        go.touch()
        for child in children:
            if await asyncio.to_thread(child.wait) != 0:
                raise RuntimeError(f"a {kind} worker failed")
        return time.perf_counter() - started


# the run --------------------------------------------------------------------------------
async def _database(admin: str, name: str, drop: bool = False) -> str:
    import asyncpg

    conn = await asyncpg.connect(admin)
    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    if not drop:
        await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    base, _, _ = admin.rpartition("/")
    return f"{base}/{name}"


async def main(args: argparse.Namespace) -> None:
    # Rounds run every contender in turn, so a noisy spell of the shared machine falls on
    # all of them; each row reports the median round (and the spread).
    rates: dict[tuple[str, str, int], list[float]] = {}
    jobs = args.jobs
    pg = await _database(args.postgres, "conveyor_bench")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets = [("postgresql", pg)]
            if not args.skip_sqlite:
                targets.append(("sqlite", f"sqlite:///{tmp}/bench.db"))
            for round_ in range(1, args.rounds + 1):
                for processes in (1, 2):
                    for backend, url in targets:
                        seconds = await _conveyor_drain(url, jobs, processes)
                        rates.setdefault(("conveyor", backend, processes), []).append(
                            jobs / seconds)
                        print(f"  round {round_}: conveyor {backend} x{processes}: "
                              f"{jobs / seconds:,.0f} jobs/s", flush=True)
                    for kind in () if args.conveyor_only else ("pgqueuer", "pgmq"):
                        seconds = await _peer_drain(kind, pg, jobs, processes)
                        rates.setdefault((kind, "postgresql", processes), []).append(
                            jobs / seconds)
                        print(f"  round {round_}: {kind} x{processes}: "
                              f"{jobs / seconds:,.0f} jobs/s", flush=True)
    finally:
        await _database(args.postgres, "conveyor_bench", drop=True)
    median = {key: statistics.median(found) for key, found in rates.items()}
    print(f"\n{jobs:,} no-op jobs drained, median of {args.rounds} rounds (min-max)\n")
    print(f"{'worker':<10} {'database':<11} {'procs':>5} {'jobs/s':>10} {'min-max':>15} "
          f"{'÷PgQueuer':>10} {'÷pgmq':>7}")
    for processes in (1, 2):
        for (kind, backend, procs), rate in median.items():
            if procs != processes:
                continue
            spread = f"{min(rates[(kind, backend, procs)]) / 1000:.1f}k-" \
                     f"{max(rates[(kind, backend, procs)]) / 1000:.1f}k"
            print(f"{kind:<10} {backend:<11} {procs:>5} {rate:>10,.0f} {spread:>15} "
                  f"{_ratio(rate, median.get(('pgqueuer', 'postgresql', procs))):>10} "
                  f"{_ratio(rate, median.get(('pgmq', 'postgresql', procs))):>7}")
    print("reproduce: python benchmarks/worker.py " + " ".join(sys.argv[1:]))


def _ratio(rate: float, peer: float | None) -> str:
    return "-" if peer is None else f"{rate / peer:.2f}"


def cli() -> None:
    """Parse the flags; run the benchmark or one peer child."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get(
        "CONVEYOR_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="an admin URL; the benchmark creates and drops its own database")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--rounds", type=int, default=3,
                        help="run every contender this many times; report the median")
    parser.add_argument("--conveyor-only", action="store_true",
                        help="skip PgQueuer and pgmq (an A/B run of two conveyor trees)")
    parser.add_argument("--fairness", action="store_true",
                        help="the per-key fairness figure instead (benchmarks/fairness.py)")
    parser.add_argument("--fair-a", type=int, default=100_000, help=argparse.SUPPRESS)
    parser.add_argument("--fair-b", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("pgqueuer", "pgmq"), help=argparse.SUPPRESS)
    parser.add_argument("--go", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = _pgqueuer_child if args.child == "pgqueuer" else _pgmq_child
        asyncio.run(child(args.postgres, args.go))
        return
    if args.fairness:
        asyncio.run(_fairness(args))
        return
    asyncio.run(main(args))


async def _fairness(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    import fairness

    pg = await _database(args.postgres, "conveyor_fairness")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets = [("postgresql", pg)]
            if not args.skip_sqlite:
                targets.append(("sqlite", f"sqlite:///{tmp}/fair.db"))
            await fairness.main(targets, args.fair_a, args.fair_b)
    finally:
        await _database(args.postgres, "conveyor_fairness", drop=True)
    print("reproduce: python benchmarks/worker.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    cli()
