"""A stopped `conveyor demo` leaves nothing behind: `kill -9`, SIGTERM or a lone SIGINT
(to its pid, not its process group) and within seconds none of its children runs (smtp-sink
included) and its temporary folders (the SQLite file's, the sink's dump in /dev/shm) are
gone. And a run whose stdout is no terminal prints plain progress lines."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from conveyor.demo import drive
from conveyor.demo.ending import Janitor
from conveyor.demo.peers import find_smtp_sink

GONE_WITHIN = 5.0
"""Seconds a stopped demo and its children get to be gone (measured: well under one)."""

PROGRESS = re.compile(r"^progress \d+ s: enqueued [\d,]+ of [\d,]+ \((.*)\); delivered "
                      r"[\d,]+ of [\d,]+ \((.*)\), failed \d+$", re.M)


def _demo(args: list[str], log: Path, every: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", drive.PROGRESS_EVERY_ENV: str(every)}
    with log.open("wb") as out:
        # a session of its own, as the probe ran it: a signal to the demo's group would
        # reach its children directly, and the test is that the demo alone takes them
        return subprocess.Popen([sys.executable, "-m", "conveyor.cli.main", "demo", *args],
                                stdout=out, stderr=subprocess.STDOUT, cwd=log.parent,
                                env=env, start_new_session=True)


def _alive(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{process.pid} {' '.join(process.cmdline())[:100]}")
    return alive


def _clean_up_after(children: list[psutil.Process], folders: set[Path]) -> None:
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _has_database(child: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return any(f.path.endswith("/demo.db") for f in child.open_files())
    return False


def _folders(children: list[psutil.Process]) -> set[Path]:
    """The run's temporary folders: the sink's dump folder (from smtp-sink's `-D`) and the
    one of the SQLite file the workers have open."""
    found: set[Path] = set()
    for child in children:
        with contextlib.suppress(psutil.Error):
            line = child.cmdline()
            if "-D" in line:
                found.add(Path(line[line.index("-D") + 1]).parent)
            found |= {Path(f.path).parent for f in child.open_files()
                      if f.path.endswith("/demo.db")}
    return found


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["kill-9", "SIGTERM", "lone-SIGINT"])
def test_a_stopped_demo_leaves_no_child_and_no_files(tmp_path: Path, sig: int) -> None:
    if find_smtp_sink() is None:
        pytest.skip("needs Postfix's smtp-sink (scripts/get-smtp-sink)")
    log = tmp_path / "demo.log"
    # The recipient run holds a fifth of its notifications until its quiet hours end: it
    # stays up with every child running at little CPU, whatever the machine's load.
    demo = _demo(["--recipients", "2000", "--hold-seconds", "60", "--workers", "2",
                  "--no-progress"], log, 0.2)
    children: list[psutil.Process] = []
    folders: set[Path] = set()
    try:
        deadline = time.monotonic() + 90
        while True:  # smtp-sink up, both workers past their start (armed): database open
            children = psutil.Process(demo.pid).children(recursive=True)
            folders = _folders(children)
            if any(c.name() == "smtp-sink" for c in children) and sum(
                    _has_database(c) for c in children) == 2:
                break
            assert demo.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # the database's, and the dump's in /dev/shm (or beside the database without room)
        assert any(f.name.startswith("conveyor-demo-") for f in folders), folders
        os.kill(demo.pid, sig)
        stopped = time.monotonic()
        demo.wait(GONE_WITHIN)
        while _alive(children) or any(f.exists() for f in folders):
            assert time.monotonic() - stopped < GONE_WITHIN, \
                (_alive(children), [f for f in folders if f.exists()])
            time.sleep(0.05)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        _clean_up_after(children, folders)  # a failed test leaves nothing running either
    out = log.read_text()
    if sig == signal.SIGKILL:
        assert demo.returncode == -signal.SIGKILL
        return
    assert demo.returncode == 128 + sig, out
    assert f"conveyor demo: stopped by {signal.Signals(sig).name}; its workers and peers " \
           "are ended and its temporary files removed" in out
    assert "leaked" not in out and "Traceback" not in out, out


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_output_into_a_file_shows_plain_progress_lines(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    demo = _demo(["--messages", "4000", "--mix", "email=0.5,fcm=0.5"], log, 0.3)
    try:
        assert demo.wait(100) == 0, log.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    out = log.read_text()
    lines = PROGRESS.findall(out)
    assert lines, out
    enqueued, delivered = lines[-1]
    assert re.fullmatch(r"email [\d,]+ of 2,000, FCM [\d,]+ of 2,000", enqueued), enqueued
    assert re.fullmatch(r"email [\d,]+; FCM [\d,]+", delivered), delivered  # by worker group
    # then the report, as on a terminal
    assert "PASS: every notification arrived exactly once" in out
    assert out.index("progress") < out.index("PASS")


def test_no_progress_means_no_lines_either(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(drive.PROGRESS_EVERY_ENV, "0.01")
    printed: list[str] = []
    quiet = drive._Progress(10, False, printed.append)
    assert quiet.bars is None and not quiet.every
    time.sleep(0.02)
    assert not quiet.line_due()
    # with progress on and stdout no terminal (pytest's capture): lines, no bars
    plain = drive._Progress(10, True, printed.append)
    assert plain.bars is None and plain.every == 0.01
    time.sleep(0.02)
    assert plain.line_due()
    plain.line(4, 3, 1, {"email": 6, "fcm": 2, "apns": 2}, {"email": 3, "fcm": 1},
               {("fcm", "apns"): 1, ("email",): 2})
    assert not plain.line_due()
    assert printed == ["progress 0 s: enqueued 4 of 10 (email 3 of 6, FCM 1 of 2, APNs 0 of "
                       "2); delivered 3 of 10 (email 2; FCM, APNs 1), failed 1"]


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"])


def test_the_janitor_cleans_up_after_whoever_held_it(tmp_path: Path) -> None:
    """Once its writer is gone it kills the processes it was told of and removes the
    folders; a process whose pid names another one by then (its start time differs) is
    left alone."""
    folder = tmp_path / "dump"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "file").write_bytes(b"x" * 1000)
    target, other = _sleeper(), _sleeper()
    try:
        janitor = Janitor()
        janitor.remove_at_end(folder)
        janitor.kill_at_end(target.pid)
        janitor._tell(f"kill {other.pid} 1")  # started at another time: not that one
        time.sleep(0.3)
        assert folder.exists() and target.poll() is None  # nothing before the end
        janitor.close()
        assert not folder.exists()
        assert target.wait(5) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for sleeper in (target, other):
            sleeper.kill()
            sleeper.wait()
