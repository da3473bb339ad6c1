"""A chord's callback runs exactly once when worker processes are killed (SIGKILL) while
its children run, on both backends. FLOW_KILL_CHILDREN sets the size (default 1,000; the
report's 10,000 is the same test with FLOW_KILL_CHILDREN=10000)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conveyor.worker import App, chord, group
from tests.flows.apps import chord_app

APP = "tests.flows.apps.chord_app:app"
ROOT = Path(__file__).resolve().parents[2]
CHILDREN = int(os.environ.get("FLOW_KILL_CHILDREN", "1000"))
LEASE = 2


def _lines(out: Path, kind: str) -> list[list[str]]:
    if not out.exists():
        return []
    rows = [line.split() for line in out.read_text().splitlines()]
    return [r for r in rows if len(r) >= 3 and r[2] == kind]


def test_a_chord_survives_kill_9_and_calls_back_once(database_url: str,
                                                     tmp_path: Path) -> None:
    out, log = tmp_path / "out.txt", tmp_path / "log.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(TEST_CONVEYOR_URL=database_url, TEST_OUT=str(out), TEST_LEASE=str(LEASE),
               PYTHONPATH=str(ROOT))
    app = App(database_url, visibility_timeout=LEASE)
    app.tasks.update(chord_app.app.tasks)
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "conveyor.cli.main", "worker", APP], stdout=sink,
                stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        started.append(process)
        return process

    try:
        began = time.monotonic()
        run = app.enqueue_flow(chord(group(app.signature("child", [i])
                                           for i in range(CHILDREN)),
                                     app.signature("callback")))
        enqueued = time.monotonic() - began
        workers = [start(), start()]
        kills = 0
        for share in (0.2, 0.45, 0.7):  # kill -9 one worker at each mark, start another
            _wait(lambda s=share: len(_lines(out, "child")) >= CHILDREN * s, log, 300)
            if _lines(out, "callback"):
                break
            victim = workers.pop(0)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            workers.append(start())
        assert run.wait(timeout=600) == sum(range(CHILDREN))
        took = time.monotonic() - began
        time.sleep(LEASE * 2 + 1)  # any repeat would come after the leases of the killed
        calls = _lines(out, "callback")
        assert len(calls) == 1, calls
        assert calls[0][3:] == [str(CHILDREN), str(sum(range(CHILDREN)))]
        assert kills >= 1
        # every child ran at least once; some more than once (killed mid-run or before
        # their acknowledgement), which the flow counted once
        ran = [int(r[3]) for r in _lines(out, "child")]
        assert set(ran) == set(range(CHILDREN))
        tree = app._sync(run.tree())
        assert {n.state for n in tree.nodes} == {"succeeded"}
        print(f"\nflow kill test: {CHILDREN} children, {kills} kills, enqueue "
              f"{enqueued:.2f} s, callback after {took:.1f} s, {len(ran) - CHILDREN} "
              f"children ran twice")
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
        app.close()


def _wait(check: Callable[[], bool], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
