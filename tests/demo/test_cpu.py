"""The demo's CPU accounting beyond its own processes: the local PostgreSQL backends that
served it and the time spent waiting for a core (`conveyor.demo.cpu`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor.demo.cpu import ServerCpu, run_queue_wait
from conveyor.demo.report import Report, bottleneck, render_report

LINUX = sys.platform.startswith("linux")


@pytest.mark.skipif(not LINUX, reason="schedstat is Linux's")
def test_run_queue_wait_of_live_processes_and_none_of_gone_ones() -> None:
    # Busy child processes, more than cores: the scheduler keeps some of them waiting.
    # (Not this process's own total: it sums its live threads, and a thread another test
    # left that ends meanwhile takes its share with it; CI saw 32.604 after 32.616.)
    spin = "import time\nend = time.monotonic() + 2.0\nwhile time.monotonic() < end: pass"
    kids = [subprocess.Popen([sys.executable, "-c", spin])
            for _ in range((os.cpu_count() or 1) + 2)]
    time.sleep(0.4)
    waited = [run_queue_wait(k.pid) for k in kids]
    time.sleep(0.2)
    again = [run_queue_wait(k.pid) for k in kids]  # a live process's figure only grows
    for k in kids:
        k.wait()
    assert sum(waited) > 0
    assert all(b >= a for a, b in zip(waited, again, strict=True))
    assert run_queue_wait() >= 0.0
    assert run_queue_wait(kids[0].pid) == 0.0  # gone (reaped)
    assert run_queue_wait(2**22 + 12_345) == 0.0  # above pid_max: no such process


def test_server_cpu_only_for_a_local_postgres() -> None:
    assert not ServerCpu("sqlite:///x.db").enabled
    assert not ServerCpu("postgresql://u@db.example.com/x").enabled
    assert ServerCpu("postgresql://u@127.0.0.1:5432/x").enabled
    assert ServerCpu("postgresql://u@localhost/x").enabled


def test_a_starved_run_names_the_machine_not_a_lane() -> None:
    report = Report(messages=10, counts={"email": 10}, worker_cpu=4.0, producer_cpu=1.0,
                    server_cpu=2.0, wall_seconds=20.0, run_queue=30.0, server_waited=5.0,
                    load=(14.0, 12.0, 9.0), waits={"email:send": 10.0, "email:ledger": 2.0})
    line = bottleneck(report)
    assert line.startswith("CPU, shared with other load: the run's processes waited 35 s "
                           "for a core and ran 7 s"), line
    text = render_report(report)
    assert "database server" in text and "load average 14.0 12.0 9.0" in text
    calm = Report(messages=10, counts={"email": 10}, worker_cpu=4.0, producer_cpu=1.0,
                  wall_seconds=20.0, run_queue=0.5, waits={"email:send": 10.0})
    assert bottleneck(calm).startswith("email send")
    cores = os.cpu_count() or 1
    full = Report(messages=10, counts={"email": 10}, worker_cpu=20.0 * cores,
                  wall_seconds=20.0, run_queue=100.0 * cores, waits={"email:send": 1.0})
    assert bottleneck(full).startswith(f"CPU: {cores:.2f} of {cores} cores busy")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_demo_on_postgres_counts_the_servers_cpu(tmp_path: Path, postgres_url: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "conveyor.cli.main", "demo", "--messages",
                           "2000", "--database", postgres_url, "--no-progress"],
                          capture_output=True, text=True, timeout=170, cwd=tmp_path, env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "PASS: every notification arrived exactly once" in out
    if "127.0.0.1" in postgres_url or "localhost" in postgres_url:
        assert re.search(r"database server \d+%", out), out
        assert "broker: in the database server" in out
    assert re.search(r"waiting for CPU\s+[\d,.]+ s runnable but not running", out)
