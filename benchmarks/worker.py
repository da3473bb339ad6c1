# ruff: noqa: ASYNC110, ASYNC220, ASYNC240  (a harness: it polls files and spawns processes)
"""Drain N no-op jobs with conveyor's worker, PgQueuer's worker and a bare pgmq loop.

    python benchmarks/worker.py [--jobs 100000] [--rounds 3] [--postgres URL] [--skip-sqlite]
                                [--no-peers] [--baseline-src DIR] [--flows]
    python benchmarks/worker.py --fairness    (per-key fairness: see fairness.py)

Each contender gets the same jobs in the same PostgreSQL database (a fresh one named
`conveyor_bench_PID`, created and dropped here) and runs in 1 and 2 processes; conveyor also runs
on an SQLite file. Jobs are enqueued before the clock starts; processes start, connect and
wait at a barrier (conveyor: its queue is paused until the clock starts), so the figure is
drain throughput only. The table gives jobs/s and each row's ratio to PgQueuer and to pgmq
on the same process count.

`--baseline-src DIR` also runs another tree's conveyor workers (e.g. `main`'s `src`, from
`git worktree add`) in every round, next to this tree's, on their own databases: the
`÷base` column is the same-run ratio. `--flows` also drains a chord of `--jobs` no-op
children and its callback in every round (clock stopped when the callback has run and the
queue is empty, as for plain jobs): its
`cost/child` column is its time per child divided by a plain job's time (`conveyor` row).

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


@app.task(queue=QUEUE, max_retries=0, track=True)
async def chord_done(results: list[None]) -> int:
    """A chord's callback: how many results it got."""
    return len(results)


# conveyor ---------------------------------------------------------------------------
async def _conveyor_prepare(url: str, jobs: int, chord: bool = False) -> str | None:
    """Enqueue the jobs into the paused queue; with `chord`, as one chord (its callback's
    job id is returned)."""
    producer = App(url, middleware=[])
    producer.tasks.update(app.tasks)
    await producer.ensure_queue(QUEUE)
    source = await producer.source()
    await source.purge_queue(QUEUE)  # type: ignore[attr-defined]
    await source.update_queue(QUEUE, {"paused": True})
    callback = None
    if chord:  # (imported here: a baseline tree may have no flows)
        from conveyor.worker import chord as make_chord
        from conveyor.worker import group

        run = await producer.aenqueue_flow(make_chord(
            group(producer.signature("noop", (i,)) for i in range(jobs)),
            producer.signature("chord_done")))
        callback = run.job_ids[-1]
    else:
        for start in range(0, jobs, 10_000):
            await producer.send([noop.call((i,), {})
                                 for i in range(start, min(jobs, start + 10_000))])
    await producer.aclose()
    return callback


async def _conveyor_drain(url: str, jobs: int, processes: int, src: str | None = None,
                          chord: bool = False) -> float:
    if src is not None:
        # Another tree is measured whole by its own code in a child process: its own
        # migrations make its database's schema, and its own statements watch the drain
        # (this tree's schema under an older tree's statements measured neither).
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--drain-child", url, "--jobs", str(jobs),
            "--processes", str(processes), *(["--flows"] if chord else []),
            env={**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE}"},
            stdout=asyncio.subprocess.PIPE)
        out, _ = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"the drain of {src} failed")
        return float(out.decode().split()[-1])
    callback = await _conveyor_prepare(url, jobs, chord)
    # A drain child keeps the tree it was given ahead of HERE.
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(HERE)]))
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
            if callback is not None:  # the callback's status (one row), then the acks
                while getattr(await source.jobs.status_get(callback), "status",
                              None) != "succeeded":
                    await asyncio.sleep(0.01)
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
    # Names of this run's own: two benchmarks on one server must not drop each other's.
    name = f"conveyor_bench_{os.getpid()}"
    pg = await _database(args.postgres, name)
    base_pg = await _database(args.postgres, f"{name}_base") if args.baseline_src else ""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets = [("postgresql", pg, base_pg)]
            if not args.skip_sqlite:
                targets.append(("sqlite", f"sqlite:///{tmp}/bench.db",
                                f"sqlite:///{tmp}/base.db"))
            for round_ in range(1, args.rounds + 1):
                for processes in (1, 2):
                    for backend, url, base_url in targets:
                        runs = [("conveyor", url, None, False)]
                        if args.baseline_src:  # alternate which goes first
                            base = ("base", base_url, args.baseline_src, False)
                            runs.insert(round_ % 2, base)
                        if args.flows:
                            runs.append(("chord", url, None, True))
                        for kind, target, src, chord in runs:
                            seconds = await _conveyor_drain(target, jobs, processes, src,
                                                            chord)
                            rates.setdefault((kind, backend, processes), []).append(
                                jobs / seconds)
                            print(f"  round {round_}: {kind} {backend} x{processes}: "
                                  f"{jobs / seconds:,.0f} jobs/s", flush=True)
                    if args.no_peers:
                        continue
                    for kind in ("pgqueuer", "pgmq"):
                        seconds = await _peer_drain(kind, pg, jobs, processes)
                        rates.setdefault((kind, "postgresql", processes), []).append(
                            jobs / seconds)
                        print(f"  round {round_}: {kind} x{processes}: "
                              f"{jobs / seconds:,.0f} jobs/s", flush=True)
    finally:
        await _database(args.postgres, name, drop=True)
        if args.baseline_src:
            await _database(args.postgres, f"{name}_base", drop=True)
    median = {key: statistics.median(found) for key, found in rates.items()}
    if args.no_peers:
        _table_without_peers(jobs, args.rounds, rates, median)
        return
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
                  f"{rate / median[('pgqueuer', 'postgresql', procs)]:>10.2f} "
                  f"{rate / median[('pgmq', 'postgresql', procs)]:>7.2f}")
    print("reproduce: python benchmarks/worker.py " + " ".join(sys.argv[1:]))


def _table_without_peers(jobs: int, rounds: int, rates: dict[tuple[str, str, int], list[float]],
                         median: dict[tuple[str, str, int], float]) -> None:
    print(f"\n{jobs:,} no-op jobs drained, median of {rounds} rounds (min-max); load "
          f"average {os.getloadavg()[0]:.2f}\n")
    print(f"{'worker':<10} {'database':<11} {'procs':>5} {'jobs/s':>10} {'min-max':>15} "
          f"{'÷base':>7} {'cost/child':>10}")
    for (kind, backend, procs), rate in sorted(median.items(), key=lambda i: (i[0][2], i[0][1])):
        found = rates[(kind, backend, procs)]
        spread = f"{min(found) / 1000:.1f}k-{max(found) / 1000:.1f}k"
        ours = median[("conveyor", backend, procs)]
        base = median.get(("base", backend, procs))
        vs_base = f"{rate / base:.3f}" if base and kind != "chord" else ""
        per_child = f"{ours / rate:.2f}x" if kind == "chord" else ""
        print(f"{kind:<10} {backend:<11} {procs:>5} {rate:>10,.0f} {spread:>15} "
              f"{vs_base:>7} {per_child:>10}")
    print("reproduce: python benchmarks/worker.py " + " ".join(sys.argv[1:]))


def cli() -> None:
    """Parse the flags; run the benchmark or one peer child."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get(
        "CONVEYOR_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="an admin URL; the benchmark creates and drops its own database")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--no-peers", action="store_true",
                        help="conveyor only (no PgQueuer, no pgmq)")
    parser.add_argument("--baseline-src", help="another tree's src/ to run next to this one")
    parser.add_argument("--flows", action="store_true",
                        help="also drain a chord of --jobs children in every round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="run every contender this many times; report the median")
    parser.add_argument("--fairness", action="store_true",
                        help="the per-key fairness figure instead (benchmarks/fairness.py)")
    parser.add_argument("--fair-a", type=int, default=100_000, help=argparse.SUPPRESS)
    parser.add_argument("--fair-b", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("pgqueuer", "pgmq"), help=argparse.SUPPRESS)
    parser.add_argument("--go", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--drain-child", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drain_child:  # one drain by the conveyor on PYTHONPATH: print its seconds
        print(asyncio.run(_conveyor_drain(args.drain_child, args.jobs, args.processes,
                                          chord=args.flows)))
        return
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

    name = f"conveyor_fairness_{os.getpid()}"  # a database of the run's own
    pg = await _database(args.postgres, name)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets = [("postgresql", pg)]
            if not args.skip_sqlite:
                targets.append(("sqlite", f"sqlite:///{tmp}/fair.db"))
            await fairness.main(targets, args.fair_a, args.fair_b)
    finally:
        await _database(args.postgres, name, drop=True)
    print("reproduce: python benchmarks/worker.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    cli()
