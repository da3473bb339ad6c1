"""`conveyor demo --messages 5000` end to end, as a subprocess, checking its report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conveyor.demo.peers import _tmpfs_folder
from conveyor.demo.rustserver import available


@pytest.mark.slow
def test_demo_5000_passes_its_own_check(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "conveyor.cli.main", "demo", "--messages",
                           "5000", "--no-progress"], capture_output=True, text=True,
                          timeout=110, cwd=tmp_path, env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "5,000 (3,000 email, 750 web push, 750 FCM, 500 APNs)" in out  # the default mix
    # email's processes apart from the CPU-heavy channels'
    assert re.search(r"; \d+ delivery worker processes \(\d+ for email; \d+ for web push, "
                     r"FCM, APNs\)", out)
    for sink, n in (("email", "3,000"), ("push", "750"), ("fcm", "750"), ("apns", "500")):
        assert re.search(rf"{sink} sink\s+{n} received, {n} distinct, 0 missing, "
                         rf"0 duplicated, 0 unexpected; content checked on {n}, 0 wrong", out)
    server = "granian: HTTP/2 + TLS in Rust" if available() else "h2 + TLS"
    assert f"fcm: FCM HTTP v1 peer ({server}" in out and f"apns: APNs peer ({server}" in out
    # each sink's CPU per message it received
    assert re.search(r"sink CPU\s+email [\d.]+ s = [\d,]+ us/msg, web push [\d.]+ s = [\d,]+ "
                     r"us/msg, FCM [\d.]+ s = [\d,]+ us/msg, APNs [\d.]+ s = [\d,]+ us/msg", out)
    assert "PASS: every notification arrived exactly once with the right content, on email, " \
           "web push, FCM, APNs" in out
    for line in ("wall time", "enqueue", "latency", "CPU", "bottleneck", "cost"):
        assert line in out


@pytest.mark.slow
def test_demo_without_smtp_sink_uses_aiosmtpd(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "conveyor.cli.main", "demo", "--messages",
                           "2000", "--mix", "email=1", "--no-smtp-sink", "--no-progress"],
                          capture_output=True, text=True, timeout=110, cwd=tmp_path, env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "email: aiosmtpd" in out and "SMTP client       aiosmtplib pool" in out
    assert re.search(r"email sink\s+2,000 received, 2,000 distinct, 0 missing", out)
    assert "lanes (email)" in out and "bottleneck" in out
    assert "PASS: every notification arrived exactly once" in out


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_demo_with_workers_killed_loses_nothing(tmp_path: Path) -> None:
    # Enough work that a quiet machine still sees several kills (a worker is killed only
    # once it has delivered for the interval), bounded in time on a loaded one.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "conveyor.cli.main", "demo", "--messages",
                           "20000", "--kill-workers-every", "1.5", "--mix",
                           "email=0.7,webpush=0.3", "--no-progress"],
                          capture_output=True, text=True, timeout=170, cwd=tmp_path, env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"email sink\s+[\d,]+ received, 14,000 distinct, 0 missing", out)
    assert re.search(r"push sink\s+[\d,]+ received, 6,000 distinct, 0 missing", out)
    crashes = re.search(r"crashes\s+(\d+) kill -9 of delivery workers \(every 1.5 s\).*"
                        r"extra copies at the sinks: email ([\d,]+), push ([\d,]+); "
                        r"bound \d+ kills x in_flight 400 = ([\d,]+) per channel", out)
    assert crashes is not None, out
    kills, email, push, bound = (int(g.replace(",", "")) for g in crashes.groups())
    assert kills >= 2 and bound == kills * 400 and max(email, push) <= bound
    assert "PASS: none lost, right content, extra copies within the bound" in out


@pytest.mark.slow
def test_demo_mobile_only_mix(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "conveyor.cli.main", "demo", "--messages",
                           "2000", "--mix", "fcm=0.6,apns=0.4", "--no-progress"],
                          capture_output=True, text=True, timeout=110, cwd=tmp_path, env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "2,000 (1,200 FCM, 800 APNs)" in out
    assert re.search(r"fcm sink\s+1,200 received, 1,200 distinct, 0 missing", out)
    assert re.search(r"apns sink\s+800 received, 800 distinct, 0 missing", out)
    assert "email sink" not in out and "lanes (fcm)" in out and "lanes (apns)" in out
    assert re.search(r"delivery worker processes\n", out)  # one group: no split to name
    assert "PASS: every notification arrived exactly once with the right content, on FCM, " \
           "APNs" in out


def test_sink_dump_goes_to_tmpfs_only_with_room(tmp_path: Path) -> None:
    roomy = _tmpfs_folder(1_000, root=str(tmp_path))
    assert roomy is not None and roomy.parent == tmp_path and roomy.is_dir()
    assert _tmpfs_folder(10**18, root=str(tmp_path)) is None  # no room: beside the run
    assert _tmpfs_folder(1_000, root=str(tmp_path / "absent")) is None


def _report_channels(index: int, url: str, channels: dict[str, int], options: object,
                     queue: Any, stop: Any) -> None:
    import time

    queue.put({"worker": index, "channels": sorted(channels), "sent": 0})
    time.sleep(0.2)
    queue.put({"worker": index, "channels": sorted(channels), "sent": 1})
    deadline = time.monotonic() + 30
    while not stop.is_set() and time.monotonic() < deadline:  # polled, as the demo's are:
        time.sleep(0.05)  # a process killed inside Event.wait leaves the Event's lock held


def test_worker_pool_replaces_a_killed_worker_with_one_of_its_group() -> None:
    import multiprocessing as mp
    import time

    from conveyor.demo.crashes import WorkerPool

    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    pool = WorkerPool(ctx, _report_channels, ("url", {"email": 1, "push": 2, "fcm": 3},
                                              None, stop))
    seen: dict[int, list[str]] = {}

    def wait_for(n: int, delivering: int = 0) -> None:
        deadline = time.monotonic() + 30
        while ((len(seen) < n or len(pool.delivering) < delivering)
               and time.monotonic() < deadline):
            seen.update((r["worker"], r["channels"]) for r in pool.reports())
            time.sleep(0.05)
        assert len(seen) == n and len(pool.delivering) >= delivering, (seen, pool.delivering)

    try:
        pool.start(("email",))
        wait_for(1, delivering=1)
        pool.start(("push", "fcm"))
        wait_for(2, delivering=2)
        assert seen == {0: ["email"], 1: ["fcm", "push"]}
        pool.kill_oldest()  # worker 0, the email one: delivering longest
        wait_for(3)
        assert seen[2] == ["email"] and pool.kills == 1 and sorted(pool.procs) == [1, 2]
    finally:
        stop.set()
        for proc in pool.live:
            proc.join(10)


def test_only_a_worker_that_has_delivered_is_killed() -> None:
    """However slowly a loaded machine starts a worker, it delivers before it is killed:
    the demo makes progress between kills (a worker reporting nothing done is left)."""
    import queue

    from conveyor.demo.crashes import WorkerPool

    pool = WorkerPool(None, None, ("url", {}, None, None))
    first, second = queue.Queue[dict[str, int]](), queue.Queue[dict[str, int]]()
    pool.queues = {0: first, 1: second}
    first.put({"sent": 0, "failed": 0, "skipped": 0})
    second.put({"sent": 0})
    assert len(pool.reports()) == 2 and pool.delivering == {} and pool.oldest_age() == 0.0
    second.put({"sent": 0, "skipped": 4})  # a redelivered envelope's, already sent: work
    pool.reports()
    first.put({"sent": 7})
    pool.reports()
    assert list(pool.delivering) == [1, 0] and pool.oldest_age() > 0.0


def test_workers_are_shared_by_the_channel_groups() -> None:
    from conveyor.demo.run import share_workers

    every = {"email": 6, "push": 1, "fcm": 2, "apns": 1}
    assert share_workers(2, every) == [(1, ("email",)), (1, ("push", "fcm", "apns"))]
    assert share_workers(5, every) == [(2, ("email",)), (3, ("push", "fcm", "apns"))]
    assert share_workers(1, every) == [(1, ("email",)), (1, ("push", "fcm", "apns"))]
    assert share_workers(3, {"fcm": 1}) == [(3, ("fcm",))]
    assert share_workers(2, {"email": 1, "apns": 1}) == [(1, ("email",)), (1, ("apns",))]


def test_default_workers_by_database() -> None:
    from conveyor.demo.run import default_workers

    cores = os.cpu_count() or 2
    assert default_workers(None) == default_workers("sqlite:///x.db") == cores
    assert default_workers("postgresql://u@h/db") == default_workers("postgres://h/d") \
        == default_workers("PostgreSQL://u@h/db") == 2 * cores
    assert default_workers("postgres-demo.db") == cores  # a bare path is a SQLite file


def test_mix_names_the_channels() -> None:
    import argparse

    from conveyor.cli.demo import _mix
    from conveyor.demo.run import split

    assert _mix("email=0.6,webpush=0.15,fcm=0.15,apns=0.1") == {
        "email": 0.6, "push": 0.15, "fcm": 0.15, "apns": 0.1}
    for bad in ("sms=1", "email=-1", "email=0", "fcm"):
        with pytest.raises(argparse.ArgumentTypeError):
            _mix(bad)
    assert split(1_000_000, {"email": 0.6, "push": 0.15, "fcm": 0.15, "apns": 0.1}) == {
        "email": 600_000, "push": 150_000, "fcm": 150_000, "apns": 100_000}
    assert split(7, {"fcm": 1, "apns": 1}) == {"fcm": 4, "apns": 3}


def test_check_names_the_channel_that_went_wrong() -> None:
    from collections import Counter

    from conveyor.demo.report import Report, render_report

    report = Report(messages=4, counts={"email": 2, "fcm": 2})
    report.check({"email": ({"a", "b"}, {"received": Counter({"a": 1, "b": 1}), "bad": 0}),
                  "fcm": ({"t1", "t2"}, {"received": Counter({"t1": 2}), "bad": 0})})
    assert not report.ok
    assert report.checks["fcm"]["missing"] == 1 and report.checks["fcm"]["duplicated"] == 1
    last = render_report(report).splitlines()[-1]
    assert last.startswith("  check") and "FAIL: FCM (1 missing, 1 duplicated" in last
    assert "email" not in last


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_recipients_counts_each_group(tmp_path: Path, database_url: str) -> None:
    """The recipient million, CI-sized, on both backends: 10% skipped by preference, 20%
    held until their quiet hours end, the rest delivered now, each exactly once."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "conveyor.cli.main", "demo", "--recipients",
                           "2000", "--hold-seconds", "5", "--database", database_url,
                           "--no-progress"], capture_output=True, text=True, timeout=230,
                          cwd=tmp_path, env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"recipients\s+2,000 imported in [\d.]+ s = [\d,]+ recipients/s", out)
    assert re.search(r"notify\s+2,000 people in one bulk notify, [\d.]+ s: 1,400 queued, "
                     r"400 held \(quiet hours\), skipped: 200 no address, 200 preference", out)
    assert re.search(r"delivered now\s+1,400 \(the plain group\): all sent [\d.]+ s after", out)
    assert re.search(r"held, released\s+400 until their quiet hours ended at \+\d+ s "
                     r"\(400 still held 1 s before it\); all sent by", out)
    assert "preference + quiet-hour step" in out and "plain path (build" in out
    # The default mix with Web Push left out (a recipient's push endpoint is https://).
    for sink in ("email", "fcm", "apns"):
        assert re.search(rf"{sink} sink\s+([\d,]+) received, \1 distinct, 0 missing, "
                         r"0 duplicated, 0 unexpected", out)
    assert "PASS: every notification arrived exactly once" in out
