"""Soak: a steady stream of messages through the native API for a long while, a worker
draining jobs beside it, and a REPEATABLE READ transaction holding the xmin horizon (or,
on SQLite, a read transaction pinning the WAL) for a stretch in the middle.

    python benchmarks/soak.py --database postgresql://postgres@127.0.0.1:5432/soak
    python benchmarks/soak.py --minutes 3 --database sqlite:///tmp/soak.db
    python benchmarks/soak.py --minutes 30 --rate 2000 --out soak-out

The holder starts at a third of the run and lasts a third (--hold-start, --hold-minutes).
Every --sample seconds it records the rates sent and drained, the backlog, the end-to-end
p99 (send to receive), the dead tuples and the size of conveyor's tables (the database's
own statistics and what `/metrics` says), and prints a line. At the end: a summary against
the targets of issue 17 (how p99 is judged: benchmarks/soak_report.py), samples.csv,
events.csv (every request or message slower than a second, by UTC time) and PNG charts in
--out. The database named in the URL is dropped and made afresh on PostgreSQL; an SQLite
file is deleted first.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from soak_report import (  # noqa: E402
    START_MINUTES,
    quantile,
    summarise,
    write_events,
    write_outputs,
)
from tests.http.server import ServerProcess, conveyor_command, start_server  # noqa: E402

from conveyor.worker import App  # noqa: E402

QUEUE = "soak"
JOB_QUEUE = "soak-jobs"
PAD = "x" * 160  # ~200 B bodies, as in the runs
SLOW_EVENT = 1.0  # seconds: a request or a message this slow is logged in events.csv
WAIT = 2  # the consumers' long-poll wait_seconds

app = App(os.environ.get("SOAK_URL"), middleware=[])


@app.task(queue=JOB_QUEUE, concurrency=200, max_retries=0)
async def tick(n: int) -> None:
    """A no-op job: the soak measures the machinery."""


@dataclass
class Counters:
    """What the threads did, under one lock; the sampler reads and resets `latencies`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    received: int = 0
    deleted: int = 0
    jobs_sent: int = 0
    errors: int = 0
    redelivered: int = 0  # received with receive_count > 1 (a lease ran out first)
    delete_misses: int = 0  # receipt handles a delete did not find
    slowest_send: float = 0.0  # seconds, the longest send request so far
    slowest_receive: float = 0.0  # seconds, the longest receive that brought messages
    latencies: list[float] = field(default_factory=list)  # seconds, send -> receive
    # (wall clock, kind, seconds, messages): each request slower than SLOW_EVENT, and each
    # receive that brought a message older than that, for events.csv (a stall's when and
    # where: the send, the claim, or a lease that ran out)
    events: list[tuple[float, str, float, int]] = field(default_factory=list)


class Load:
    """Producers at a steady rate and long-polling consumers, on threads."""

    def __init__(self, url: str, rate: int, consumers: int, batch: int) -> None:
        self.url = url
        self.rate = rate
        self.batch = batch
        self.counters = Counters()
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self._produce, args=(i, 2), daemon=True)
                         for i in range(2)]
        self._threads += [threading.Thread(target=self._consume, daemon=True)
                          for _ in range(consumers)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)

    def _produce(self, index: int, of: int) -> None:
        """rate/of messages a second, in batches of `batch`, paced against the clock (a
        late batch is sent at once, so the rate holds unless the server refuses it)."""
        per_second = self.rate / of
        interval = self.batch / per_second
        sequence = itertools.count()
        began = time.monotonic() + index * interval / of
        with httpx.Client(timeout=30) as client:
            for n in sequence:
                due = began + n * interval
                pause = due - time.monotonic()
                if pause > 0 and self.stop.wait(pause):
                    return
                if self.stop.is_set():
                    return
                stamp = f"{time.time():.6f}"
                body = [{"body": f"{stamp} {PAD}"} for _ in range(self.batch)]
                posted = time.monotonic()
                try:
                    answer = client.post(f"{self.url}/v1/queues/{QUEUE}/messages",
                                         json={"messages": body})
                    ok = answer.status_code == 201
                except httpx.HTTPError:
                    ok = False
                took = time.monotonic() - posted
                with self.counters.lock:
                    self.counters.slowest_send = max(self.counters.slowest_send, took)
                    if took > SLOW_EVENT or not ok:
                        self.counters.events.append(
                            (float(stamp), "send" if ok else "send failed", took, self.batch))
                    if ok:
                        self.counters.sent += self.batch
                    else:
                        self.counters.errors += 1

    def _consume(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                try:
                    asked = time.time()
                    answer = client.post(f"{self.url}/v1/queues/{QUEUE}/messages/receive",
                                         json={"max_messages": 100, "wait_seconds": WAIT})
                    messages = answer.json()["messages"] if answer.status_code == 200 else []
                    now = time.time()
                    if answer.status_code != 200:
                        with self.counters.lock:
                            self.counters.errors += 1
                        time.sleep(0.1)
                        continue
                    if not messages:
                        continue
                    lags = [now - float(m["body"].split(" ", 1)[0]) for m in messages]
                    again = sum(m.get("receive_count", 1) > 1 for m in messages)
                    with self.counters.lock:
                        self.counters.received += len(messages)
                        self.counters.redelivered += again
                        self.counters.latencies += lags
                        self.counters.slowest_receive = max(self.counters.slowest_receive,
                                                            now - asked)
                        if now - asked > SLOW_EVENT:  # a claim that took its time
                            self.counters.events.append(
                                (asked, "receive", now - asked, len(messages)))
                        if max(lags) > SLOW_EVENT:
                            self.counters.events.append(
                                (now, "redelivered" if again else "late", max(lags),
                                 sum(lag > SLOW_EVENT for lag in lags)))
                    done = client.post(f"{self.url}/v1/queues/{QUEUE}/messages/delete",
                                       json={"receipt_handles": [m["receipt_handle"]
                                                                 for m in messages]})
                    ok = sum(r["status"] == "ok" for r in done.json()["results"]) \
                        if done.status_code == 200 else 0
                    took = time.time() - now
                    with self.counters.lock:
                        self.counters.deleted += ok
                        self.counters.delete_misses += len(messages) - ok
                        if took > SLOW_EVENT or ok < len(messages):
                            self.counters.events.append(
                                (now, "delete" if ok == len(messages) else "delete missed",
                                 took, len(messages) - ok))
                except httpx.HTTPError:
                    with self.counters.lock:
                        self.counters.errors += 1
                    time.sleep(0.1)


class JobLoad:
    """Jobs enqueued at a steady rate through the App (over the server), and a
    `conveyor worker` process running them."""

    def __init__(self, url: str, rate: int, workdir: Path) -> None:
        self.url = url
        self.rate = rate
        self.stop = threading.Event()
        self.sent = 0
        self.log = workdir / "worker.log"
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> JobLoad:
        path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(HERE)]))
        env = {**os.environ, "SOAK_URL": self.url, "PYTHONPATH": path}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*conveyor_command(), "worker", "soak:app", "--no-cron", "--batch-size", "100"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=HERE)
        self._thread.start()
        return self

    def _produce(self) -> None:
        producer = App(self.url, middleware=[])
        producer.tasks.update(app.tasks)
        batch = max(1, self.rate // 10)
        began = time.monotonic()
        for n in itertools.count():
            pause = began + n * batch / self.rate - time.monotonic()
            if pause > 0 and self.stop.wait(pause):
                break
            if self.stop.is_set():
                break
            try:
                producer.send_sync([tick.call((n,), {}) for _ in range(batch)])
                self.sent += batch
            except Exception:  # a refused batch is counted by its absence
                time.sleep(0.1)

    def join(self) -> None:
        self.stop.set()
        self._thread.join(30)
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Holder:
    """Holds the xmin horizon (PostgreSQL: a REPEATABLE READ transaction that has read a
    row) or a WAL snapshot (SQLite: a read transaction) from `start()` to `end()`."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._conn: Any = None

    def start(self) -> None:
        if self.database.startswith("postgres"):
            import psycopg

            self._conn = psycopg.connect(self.database)
            self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            self._conn.execute("SELECT count(*) FROM conveyor_queues").fetchone()
        else:
            self._conn = sqlite3.connect(sqlite_path(self.database), isolation_level=None)
            self._conn.execute("BEGIN")
            self._conn.execute("SELECT count(*) FROM conveyor_queues").fetchone()

    def end(self) -> None:
        if self._conn is not None:
            self._conn.rollback() if self.database.startswith("postgres") else \
                self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None


def sqlite_path(url: str) -> str:
    """The file of an sqlite:/// URL."""
    return url.split("sqlite:///", 1)[1]


def fresh_database(url: str) -> None:
    """Drop and create the PostgreSQL database named in the URL; delete an SQLite file."""
    if not url.startswith("postgres"):
        for suffix in ("", "-wal", "-shm"):
            Path(sqlite_path(url) + suffix).unlink(missing_ok=True)
        return
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')


class DatabaseStats:
    """Dead tuples, sizes and scans of conveyor's tables, from the database itself."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._last = (0.0, 0.0)
        if url.startswith("postgres"):
            import psycopg

            self._conn = psycopg.connect(url, autocommit=True)
            with contextlib.suppress(Exception):
                self._conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def sample(self) -> dict[str, float]:
        if self._conn is None:
            path = Path(sqlite_path(self.url))
            wal = Path(str(path) + "-wal")
            db = sqlite3.connect(path)
            try:
                free, pages, size = (db.execute(f"PRAGMA {p}").fetchone()[0]
                                     for p in ("freelist_count", "page_count", "page_size"))
            finally:
                db.close()
            wal_bytes = wal.stat().st_size if wal.exists() else 0
            return {"bytes": path.stat().st_size + wal_bytes, "wal_bytes": wal_bytes,
                    "dead": free * size, "live": (pages - free) * size,
                    "seq_scan": 0, "xmin_age": 0, "claim_blocks": -1}
        claim = self._claim_blocks()
        row = self._conn.execute("""
            SELECT coalesce(sum(n_dead_tup), 0), coalesce(sum(n_live_tup), 0),
                   coalesce(sum(pg_total_relation_size(relid)), 0),
                   coalesce(sum(seq_scan) FILTER (WHERE relname LIKE 'conveyor_messages%'), 0),
                   (SELECT coalesce(max(age(backend_xmin)), 0) FROM pg_stat_activity)
            FROM pg_stat_user_tables WHERE relname LIKE 'conveyor_%'""").fetchone()
        return {"dead": float(row[0]), "live": float(row[1]), "bytes": float(row[2]),
                "seq_scan": float(row[3]), "xmin_age": float(row[4]), "claim_blocks": claim}

    def _claim_blocks(self) -> float:
        """Buffers read per message claimed since the last sample (pg_stat_statements,
        where the server loads it; -1 elsewhere): how much dead index a claim walks."""
        try:
            row = self._conn.execute("""
                SELECT sum(shared_blks_hit + shared_blks_read), sum(rows)
                FROM pg_stat_statements
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND query LIKE '%cand AS (%'""").fetchone()
        except Exception:  # no pg_stat_statements here
            self._conn.rollback()
            return -1.0
        blocks, claimed = float(row[0] or 0), float(row[1] or 0)
        last_blocks, last_claimed = self._last
        self._last = (blocks, claimed)
        return (blocks - last_blocks) / (claimed - last_claimed) if claimed > last_claimed \
            else 0.0


class CpuMeter:
    """CPU seconds used so far by the server, the worker and (on a PostgreSQL server on
    this machine) the backends of the soak's database, autovacuum not included."""

    def __init__(self, server_pid: int, worker_pid: int | None, database: str) -> None:
        import psutil

        self._psutil = psutil
        self.pids = {"server": server_pid, "worker": worker_pid}
        self.dbname = f" {urlsplit(database).path.lstrip('/')} " \
            if database.startswith("postgres") else None
        self._db: dict[int, float] = {}
        self.db_total = 0.0

    def sample(self) -> dict[str, float]:
        found = {}
        for name, pid in self.pids.items():
            try:
                times = self._psutil.Process(pid).cpu_times() if pid else None
                found[name] = times.user + times.system if times else 0.0
            except self._psutil.Error:
                found[name] = 0.0
        if self.dbname:
            for proc in self._psutil.process_iter(["cmdline"]):
                try:
                    line = " ".join(proc.info["cmdline"] or []) + " "
                    if not line.startswith("postgres:") or self.dbname not in line:
                        continue
                    times = proc.cpu_times()
                except self._psutil.Error:
                    continue
                used = times.user + times.system
                self.db_total += used - self._db.get(proc.pid, 0.0)
                self._db[proc.pid] = used
        found["db"] = self.db_total
        return found


_METRIC = re.compile(r'^conveyor_table_(dead_tuples|free_bytes|bytes)\{table="([^"]+)"\} (\S+)$',
                     re.M)


_HOLD = re.compile(r"^conveyor_oldest_snapshot_seconds (\S+)$", re.M)


def metrics_bloat(url: str) -> dict[str, float]:
    """conveyor's own view of its tables, summed over tables, from `/metrics`, and of the
    oldest snapshot holding cleanup back (`hold`, seconds)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for kind, _table, value in _METRIC.findall(text):
        kind = "dead_tuples" if kind == "free_bytes" else kind  # SQLite's dead weight
        found[kind] = found.get(kind, 0.0) + float(value)
    if held := _HOLD.search(text):
        found["hold"] = float(held[1])
    return found


def backlog(client: httpx.Client, url: str) -> int:
    try:
        stats = client.get(f"{url}/v1/queues/{QUEUE}", timeout=30).json()["stats"]
        return int(stats["visible"]) + int(stats["in_flight"]) + int(stats["delayed"])
    except (httpx.HTTPError, KeyError, ValueError):
        return -1


Windows = list[np.ndarray[Any, Any]]  # per sample: the send-to-receive seconds of its messages


def run(args: argparse.Namespace) -> tuple[list[dict[str, float]], Windows]:
    workdir = Path(args.out)
    workdir.mkdir(parents=True, exist_ok=True)
    database = args.database or f"sqlite:///{tempfile.mkdtemp(prefix='conveyor-soak-')}/s.db"
    fresh_database(database)
    server = start_server(workdir, ["--database", database, "--no-sqs"])
    rows: list[dict[str, float]] = []
    windows: Windows = []
    load: Load | None = None
    jobs: JobLoad | None = None
    try:
        httpx.post(f"{server.url}/v1/queues", json={
            "name": QUEUE, "attributes": {"visibility_timeout": 30}}, timeout=10)
        stats = DatabaseStats(database)
        load = Load(server.url, args.rate, args.consumers, args.batch).start()
        jobs = JobLoad(server.url, args.jobs_rate, workdir).start() if args.jobs_rate else None
        holder = Holder(database)
        cpu = CpuMeter(server.process.pid, jobs.process.pid if jobs and jobs.process else None,
                       database)
        sample_loop(args, server, load, jobs, holder, stats, cpu, rows, windows)
    finally:
        if load is not None:
            load.join()
            write_events(load.counters.events, workdir)
        if jobs is not None:
            jobs.join()
        server.stop()
    return rows, windows


def sample_loop(args: argparse.Namespace, server: ServerProcess, load: Load,
                jobs: JobLoad | None, holder: Holder, stats: DatabaseStats,
                cpu: CpuMeter, rows: list[dict[str, float]], windows: Windows) -> None:
    """Sample every --sample seconds into `rows` (and each window's lags into `windows`),
    starting and ending the holder on time, until --minutes have passed."""
    total = args.minutes * 60
    hold_from = args.hold_start * 60 if args.hold_start is not None else total / 3
    hold_to = hold_from + (args.hold_minutes * 60 if args.hold_minutes is not None
                           else total / 3)
    began = time.monotonic()
    last = (began, 0, 0)
    holding = False
    client = httpx.Client()
    print(f"{'t':>5} {'sent/s':>7} {'drain/s':>7} {'backlog':>8} {'p99 ms':>8} "
          f"{'dead':>9} {'MB':>7} {'seqscan':>7} {'blk/msg':>9} {'load':>5} hold", flush=True)
    while True:
        wake = began + (len(rows) + 1) * args.sample
        time.sleep(max(0.0, wake - time.monotonic()))
        t = time.monotonic() - began
        if not holding and hold_from <= t < hold_to and args.hold:
            holder.start()
            holding = True
        elif holding and t >= hold_to:
            holder.end()
            holding = False
        with load.counters.lock:
            sent, deleted = load.counters.sent, load.counters.deleted
            lags, load.counters.latencies = load.counters.latencies, []
            errors = load.counters.errors
            redelivered, misses = load.counters.redelivered, load.counters.delete_misses
            slowest_send = load.counters.slowest_send
            slowest_receive = load.counters.slowest_receive
        window = np.array(lags, dtype=np.float32)
        now = time.monotonic()
        span = now - last[0]
        db = stats.sample()
        used = cpu.sample()
        own = metrics_bloat(server.url)
        row = {"t": round(t, 1), "sent_rate": (sent - last[1]) / span,
               "drain_rate": (deleted - last[2]) / span, "backlog": backlog(client, server.url),
               "p50_ms": quantile(window, 0.5) * 1000, "p99_ms": quantile(window, 0.99) * 1000,
               "p999_ms": quantile(window, 0.999) * 1000, "max_ms": quantile(window, 1.0) * 1000,
               "received": len(window), "dead": db["dead"], "bytes": db["bytes"],
               "wal_bytes": db.get("wal_bytes", 0.0),
               "seq_scan": db["seq_scan"], "claim_blocks": db["claim_blocks"],
               "xmin_age": db["xmin_age"], "holding": int(holding),
               "errors": errors, "redelivered": redelivered, "delete_misses": misses,
               "slowest_send_s": slowest_send, "slowest_receive_s": slowest_receive,
               "jobs_sent": jobs.sent if jobs else 0,
               "own_dead": own.get("dead_tuples", -1), "own_bytes": own.get("bytes", -1),
               "own_hold_s": own.get("hold", -1),
               "deleted": deleted, "cpu_server": used["server"], "cpu_worker": used["worker"],
               "cpu_db": used["db"], "load1": os.getloadavg()[0]}
        last = (now, sent, deleted)
        rows.append(row)
        windows.append(window)
        print(f"{t:5.0f} {row['sent_rate']:7.0f} {row['drain_rate']:7.0f} "
              f"{row['backlog']:8.0f} {row['p99_ms']:8.1f} {row['dead']:9.0f} "
              f"{row['bytes'] / 1e6:7.1f} {row['seq_scan']:7.0f} {row['claim_blocks']:9.1f} "
              f"{row['load1']:5.1f} {'*' if holding else ''}",
              flush=True)
        if t >= total:
            break
    if holding:
        holder.end()
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file); "
                        "a PostgreSQL database of that name is dropped and made afresh")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=2000, help="messages sent a second")
    parser.add_argument("--batch", type=int, default=50, help="messages per send request")
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--jobs-rate", type=int, default=100,
                        help="jobs enqueued a second for the worker (0: no worker)")
    parser.add_argument("--hold-start", type=float, help="minutes (default: a third in)")
    parser.add_argument("--hold-minutes", type=float, help="(default: a third of the run)")
    parser.add_argument("--no-hold", dest="hold", action="store_false")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--start-minutes", type=float, default=START_MINUTES,
                        help="the stretch after start-up whose p99 the others are judged by")
    parser.add_argument("--out", default="soak-out", help="directory for the CSV and PNG")
    args = parser.parse_args()
    # SIGTERM (a timeout, a kill) unwinds like Ctrl-C: the server and worker are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows, windows = run(args)
    lines = summarise(rows, windows, args)
    print("\n".join(lines))
    out = Path(args.out)
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    write_outputs(rows, out, f"conveyor soak on {(args.database or 'sqlite').split(':')[0]}")
    print(f"wrote {out / 'samples.csv'}, {out / 'soak.png'}, {out / 'summary.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
