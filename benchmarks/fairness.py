# ruff: noqa: ASYNC220, ASYNC230  (a harness: it writes files and spawns processes)
"""Fairness across keys: 100,000 jobs of key A, then 100 of key B; how soon B's last ends.

    python benchmarks/worker.py --fairness [--fair-a 100000] [--fair-b 100] [--skip-sqlite]

Two worker processes (`conveyor worker fairness:app --processes 2`) run a task limited per
key (`concurrency_key`, `key_concurrency=10`; each job sleeps 5 ms). The producer sends A's
jobs in batches of 10,000 while the workers run, then B's; the figure is the time from the
start of B's enqueue to the end of B's last job. The same run on the same task without a
key (FIFO behind A's backlog, what a queue without per-key fairness does) is the baseline.

Also the App the worker processes load (`fairness:app`, URL from BENCH_URL, B's end times
appended to BENCH_OUT).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conveyor.worker import App

HERE = Path(__file__).resolve().parent
KEYED, PLAIN = "fair-keyed", "fair-plain"
JOB_SECONDS = 0.005
KEY_LIMIT = 10
OUT = Path(os.environ.get("BENCH_OUT", "fair-out.txt"))

app = App(os.environ.get("BENCH_URL"), middleware=[])


def _key(key: str, i: int) -> str:
    return key


async def _job(key: str) -> None:
    await asyncio.sleep(JOB_SECONDS)
    if key == "B":
        with OUT.open("a") as out:
            out.write(f"{time.time()}\n")


@app.task(queue=KEYED, concurrency=100, max_retries=0, concurrency_key=_key,
          key_concurrency=KEY_LIMIT)
async def keyed(key: str, i: int) -> None:
    """Sleeps 5 ms; at most 10 of one key at once across the workers."""
    await _job(key)


@app.task(queue=PLAIN, concurrency=100, max_retries=0)
async def plain(key: str, i: int) -> None:
    """The same job without a key: the baseline."""
    await _job(key)


async def _run(url: str, queue: str, a_jobs: int, b_jobs: int, processes: int) -> dict[str, float]:
    task = keyed if queue == KEYED else plain
    producer = App(url, middleware=[])
    producer.tasks.update(app.tasks)
    await producer.ensure_queue(queue)
    source = await producer.source()
    await source.purge_queue(queue)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "b.txt"
        path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "BENCH_URL": url, "BENCH_OUT": str(out), "PYTHONPATH": path}
        command = [sys.executable, "-m", "conveyor.cli.main", "worker", "fairness:app",
                   "--processes", str(processes), "--queues", queue, "--no-cron"]
        with tempfile.TemporaryFile() as log:
            pool = subprocess.Popen(command, env=env, cwd=HERE, stdout=subprocess.DEVNULL,
                                    stderr=log)
            try:
                deadline = time.monotonic() + 60
                while _said(log, b": consuming ") < processes:
                    if time.monotonic() > deadline or pool.poll() is not None:
                        raise RuntimeError("the workers did not start")
                    await asyncio.sleep(0.05)
                began = time.perf_counter()
                for start in range(0, a_jobs, 10_000):
                    await producer.send([task.call(("A", i), {})
                                         for i in range(start, min(a_jobs, start + 10_000))])
                a_sent = time.perf_counter() - began
                b_start = time.time()
                await producer.send([task.call(("B", i), {}) for i in range(b_jobs)])
                while not out.exists() or len(out.read_text().splitlines()) < b_jobs:
                    if pool.poll() is not None:
                        raise RuntimeError("the workers stopped")
                    await asyncio.sleep(0.02)
                b_last = max(float(t) for t in out.read_text().split())
                stats = await source.queue_stats(queue)
                return {"a_enqueue_s": a_sent, "b_wait_s": b_last - b_start,
                        "a_left": float(stats.visible + stats.in_flight + stats.delayed)}
            finally:
                pool.terminate()
                pool.wait()
                await source.purge_queue(queue)  # type: ignore[attr-defined]
                await producer.aclose()


def _said(log: object, marker: bytes) -> int:
    fd = log.fileno()  # type: ignore[attr-defined]
    return os.pread(fd, os.fstat(fd).st_size, 0).count(marker)


async def main(targets: list[tuple[str, str]], a_jobs: int, b_jobs: int) -> None:
    """Run keyed and plain on each backend; print the figures."""
    rows = []
    for backend, url in targets:
        for queue in (KEYED, PLAIN):
            found = await _run(url, queue, a_jobs, b_jobs, 2)
            rows.append((backend, queue, found))
            print(f"  {backend} {queue}: B's last job ended {found['b_wait_s']:.2f} s after "
                  f"its enqueue began ({found['a_left']:,.0f} of A's jobs still waiting)",
                  flush=True)
    print(f"\n{a_jobs:,} jobs of key A, then {b_jobs} of key B; 2 worker processes, "
          f"{JOB_SECONDS * 1000:g} ms a job, key_concurrency={KEY_LIMIT}\n")
    print(f"{'database':<11} {'task':<11} {'B last ends after':>18} {'A left then':>12} "
          f"{'A enqueue':>10}")
    for backend, queue, found in rows:
        print(f"{backend:<11} {'per-key' if queue == KEYED else 'no key':<11} "
              f"{found['b_wait_s']:>16.2f} s {found['a_left']:>12,.0f} "
              f"{found['a_enqueue_s']:>8.1f} s")
