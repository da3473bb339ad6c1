"""Worker processes for real: SIGKILL mid-job, SIGTERM with jobs in flight, a global rate
limit across three processes, and the autoscaler growing and shrinking the pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor.worker import App
from tests.worker.apps import sample

APP = "tests.worker.apps.sample:app"
ROOT = Path(__file__).resolve().parents[2]


class Procs:
    """Starts worker commands with the test's environment; kills leftovers at the end."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.out = tmp / "out.txt"
        self.log = tmp / "log.txt"
        self.started: list[subprocess.Popen[bytes]] = []
        self.app = APP  # the App the workers load

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        env.update(TEST_CONVEYOR_URL=self.url, TEST_OUT=str(self.out),
                   PYTHONPATH=str(ROOT), **extra)
        return env

    def start(self, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "conveyor.cli.main", "worker", self.app, *args]
        with self.log.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       env=self.env(**extra), cwd=ROOT)
        self.started.append(process)
        return process

    def lines(self, kind: str) -> list[list[str]]:
        if not self.out.exists():
            return []
        rows = [line.split() for line in self.out.read_text().splitlines()]
        return [r for r in rows if len(r) >= 4 and r[2] == kind]

    def wait(self, check: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
        # 60 s: with coverage on a loaded machine, workers once took over 20 s to start jobs
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out: {what}\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)


def _procs(url: str, tmp_path: Path) -> Iterator[Procs]:
    p = Procs(url, tmp_path)
    yield p
    for process in p.started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def procs(database_url: str, tmp_path: Path) -> Iterator[Procs]:
    """Worker processes on each backend in turn."""
    yield from _procs(database_url, tmp_path)


@pytest.fixture
def sqlite_procs(sqlite_url: str, tmp_path: Path) -> Iterator[Procs]:
    """Worker processes on SQLite only (the slower tests run on one backend)."""
    yield from _procs(sqlite_url, tmp_path)


@pytest.fixture
def postgres_procs(postgres_url: str, tmp_path: Path) -> Iterator[Procs]:
    """Worker processes on PostgreSQL only."""
    yield from _procs(postgres_url, tmp_path)


def enqueue(url: str, task_name: str, count: int, lease: int = 30) -> None:
    """Enqueue from this process, with an App like the workers' (sync API)."""
    app = App(url, visibility_timeout=lease)
    for name, task in sample.app.tasks.items():
        app.tasks[name] = task
    try:
        app.send_sync([app.tasks[task_name].call((i,), {}) for i in range(count)])
    finally:
        app.close()


def test_sigkill_mid_job_jobs_come_back_after_the_lease(procs: Procs) -> None:
    enqueue(procs.url, "hang", 3, lease=2)
    first = procs.start(TEST_LEASE="2")
    procs.wait(lambda: len(procs.lines("started")) == 3, what="three jobs started")
    first.kill()
    first.wait()
    killed_at = time.monotonic()
    second = procs.start(TEST_LEASE="2")
    procs.wait(lambda: len(procs.lines("done")) == 3, what="three jobs done")
    assert time.monotonic() - killed_at >= 1.0  # not before the lease ran out
    assert {r[3] for r in procs.lines("done")} == {"0", "1", "2"}
    second.send_signal(signal.SIGTERM)
    assert second.wait(20) == 0


def test_sigterm_with_jobs_in_flight_loses_none(sqlite_procs: Procs) -> None:
    procs = sqlite_procs
    enqueue(procs.url, "slow", 30)
    pool = procs.start("--processes", "2", "--queues", "slow", TEST_SLOW="1")
    procs.wait(lambda: len(procs.lines("started")) >= 10, what="jobs in flight")
    pool.send_signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    first_round = {r[3] for r in procs.lines("done")}
    assert first_round and {r[3] for r in procs.lines("started")} == first_round
    again = procs.start("--queues", "slow", TEST_SLOW="0")
    procs.wait(lambda: {r[3] for r in procs.lines("done")} == {str(i) for i in range(30)},
               what="every job done")
    again.send_signal(signal.SIGTERM)
    assert again.wait(20) == 0
    done = [r[3] for r in procs.lines("done")]
    assert len(done) == 30  # each exactly once: finished jobs were acknowledged


@pytest.mark.postgres
def test_global_rate_limit_across_three_processes(postgres_procs: Procs) -> None:
    procs = postgres_procs
    rate, burst, count = 20, 20, 70
    pool = procs.start("--processes", "3", "--queues", "limited")
    time.sleep(1.0)  # let them start, so all three compete
    enqueue(procs.url, "limited", count)
    procs.wait(lambda: len(procs.lines("done")) == count, timeout=30, what="all done")
    pool.send_signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    rows = procs.lines("done")
    assert len({r[0] for r in rows}) >= 2, "the work was not shared"
    times = sorted(float(r[1]) for r in rows)
    # GCRA: any n consecutive jobs span at least (n - burst) / rate seconds.
    for i in range(len(times)):
        for j in range(i + burst, len(times)):
            n = j - i + 1
            assert times[j] - times[i] >= (n - burst) / rate - 0.25, (i, j)
    span = times[-1] - times[0]
    assert span >= (count - burst) / rate - 0.25


def test_autoscaler_grows_and_shrinks(sqlite_procs: Procs) -> None:
    procs = sqlite_procs
    enqueue(procs.url, "busy", 150)
    pool = procs.start("--processes", "1", "--autoscale", "1,3", "--scale-interval", "0.3",
                       "--queues", "busy")
    procs.wait(lambda: "scaled up to 3" in procs.log.read_text(), timeout=30,
               what="growing to 3")
    procs.wait(lambda: len(procs.lines("done")) == 150, timeout=30, what="drained")
    procs.wait(lambda: "scaled down to 1" in procs.log.read_text(), timeout=30,
               what="shrinking to 1")
    assert len({r[0] for r in procs.lines("done")}) >= 2
    pool.send_signal(signal.SIGTERM)
    assert pool.wait(30) == 0
