"""`kill -9` of a supervisor leaves no orphans: `serve --workers 2` and `worker --processes 2`
lose their children within a second or two, and a restarted `serve` binds the same ports."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from tests.http.server import conveyor_command, start_server

ROOT = Path(__file__).resolve().parents[2]
GONE_WITHIN = 2.0


def _alive(pids: list[int]) -> list[int]:
    """The pids still running (a zombie waiting for pid 1 to reap it holds nothing)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _descendants(pid: int, count: int, timeout: float = 30.0) -> tuple[list[int], list[int]]:
    """Wait until `pid` has at least `count` descendants of its own running; their pids,
    and apart those of multiprocessing's resource tracker (not ours: it leaves by itself
    once no process holds its pipe, which `_tracker_leaves` checks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ours, tracker = [], []
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                is_tracker = "resource_tracker" in " ".join(child.cmdline())
                (tracker if is_tracker else ours).append(child.pid)
        if len(ours) >= count:
            return ours, tracker
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never had {count} children")


def _running(children: list[int], database_url: str, timeout: float = 30.0) -> None:
    """Wait until each child has its database open: past its imports and armed (a child
    dies as soon as it arms itself, but on a loaded machine its imports alone can take
    seconds, and `test_the_parent_pid_watch_without_prctl` covers that path)."""
    deadline = time.monotonic() + timeout
    while not all(_has_database(pid, database_url) for pid in children):
        assert time.monotonic() < deadline, "the children never opened the database"
        time.sleep(0.05)


def _has_database(pid: int, database_url: str) -> bool:
    try:
        process = psutil.Process(pid)
        if database_url.startswith("sqlite"):
            path = database_url.split("///", 1)[1]
            return any(f.path == path for f in process.open_files())
        port = urlsplit(database_url).port or 5432
        return any(c.raddr and c.raddr.port == port for c in process.net_connections("tcp"))
    except psutil.Error:  # gone meanwhile
        return False


def _tracker_leaves(tracker: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(tracker):
        assert time.monotonic() < deadline, "the resource tracker outlived everyone"
        time.sleep(0.05)


def _kill_and_time(parent: subprocess.Popen[bytes], children: list[int]) -> float:
    """SIGKILL the parent; seconds until none of `children` runs (fails past the bound)."""
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    began = time.monotonic()
    while _alive(children):
        if time.monotonic() - began > GONE_WITHIN:
            survivors = _alive(children)
            for pid in survivors:  # leave nothing behind for the next test
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"children {survivors} outlived their supervisor")
        time.sleep(0.02)
    took = time.monotonic() - began
    print(f"{len(children)} children gone {took:.2f} s after kill -9 of {parent.pid}")
    return took


@pytest.mark.timeout(90)
def test_serve_workers_die_with_their_supervisor(database_url: str, tmp_path: Path) -> None:
    args = ["--workers", "2", "--database", database_url, "--sqs-port", "0"]
    server = start_server(tmp_path / "first", args)
    try:
        children, tracker = _descendants(server.process.pid, 2)
        _running(children, database_url)
        ports = ["--port", str(urlsplit(server.url).port)]
        if server.sqs_url is not None:
            ports += ["--sqs-port", str(urlsplit(server.sqs_url).port)]
        took = _kill_and_time(server.process, children)
        _tracker_leaves(tracker)
    finally:
        server.stop()
    assert took < GONE_WITHIN
    again = start_server(tmp_path / "second", [*args, *ports])  # the same ports: free again
    try:
        assert again.url == server.url
        assert httpx.get(f"{again.url}/healthz").status_code == 200
        assert again.sqs_url == server.sqs_url
    finally:
        assert again.stop() == 0, again.logs()


@pytest.mark.timeout(90)
def test_worker_pool_dies_with_its_supervisor(database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(TEST_CONVEYOR_URL=database_url, TEST_OUT=str(tmp_path / "out.txt"),
               PYTHONPATH=str(ROOT))
    with (tmp_path / "pool.log").open("wb") as log:
        pool = subprocess.Popen([*conveyor_command(), "worker", "tests.worker.apps.sample:app",
                                 "--processes", "2", "--url", database_url],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        children, _ = _descendants(pool.pid, 2)
        _running(children, database_url)
        assert len(_alive(children)) == 2, (tmp_path / "pool.log").read_text()
        took = _kill_and_time(pool, children)
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()
    assert took < GONE_WITHIN


_GRANDCHILD = textwrap.dedent("""
    import os, sys, time
    import conveyor.lifeline as lifeline
    lifeline._parent_death_signal = lambda: False  # the portable path, as off Linux
    print(lifeline.die_with(int(sys.argv[1])), os.getpid(), flush=True)
    time.sleep(60)
""")
_MIDDLE = textwrap.dedent("""
    import os, subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())])
    time.sleep(60)
""")


@pytest.mark.timeout(30)
def test_the_parent_pid_watch_without_prctl(tmp_path: Path) -> None:
    with (tmp_path / "out.txt").open("wb") as out:
        middle = subprocess.Popen([sys.executable, "-c", _MIDDLE, _GRANDCHILD], stdout=out,
                                  cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "out.txt").read_text().strip():
            assert time.monotonic() < deadline, "the grandchild never started"
            time.sleep(0.05)
        how, pid = (tmp_path / "out.txt").read_text().split()
        assert how == "watch"
        took = _kill_and_time(middle, [int(pid)])
    finally:
        if middle.poll() is None:
            middle.kill()
            middle.wait()
    assert took < GONE_WITHIN


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_demo_workers_and_peers_die_with_the_demo(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/demo.db"
    with (tmp_path / "demo.log").open("wb") as log:
        demo = subprocess.Popen([*conveyor_command(), "demo", "--messages", "200000",
                                 "--workers", "2", "--no-smtp-sink", "--no-progress",
                                 "--database", database],
                                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        # the peers (armed before they say they are ready; one per channel of the mix) and
        # two delivery workers, which are armed once they have the database open
        deadline = time.monotonic() + 30
        while True:
            children, tracker = _descendants(demo.pid, 4)
            if sum(_has_database(pid, database) for pid in children) >= 2:
                break
            assert time.monotonic() < deadline, (tmp_path / "demo.log").read_text()
            time.sleep(0.05)
        took = _kill_and_time(demo, children)
        _tracker_leaves(tracker)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert took < GONE_WITHIN
