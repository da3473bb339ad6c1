"""A flow job whose worker is killed (SIGKILL) on every attempt is moved to the dead-letter
queue by the broker (maxReceiveCount) without any worker seeing it fail; its node's failed
end is recorded in that same transaction, so its parent follows the child's on_failure:
fail -> the parent fails without running; ignore and continue -> the parent runs, once,
with None for the child. Real worker processes (`conveyor worker`), both backends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conveyor.broker.broker import Broker
from conveyor.worker import App
from tests.flows.apps import doomed_app

APP = "tests.flows.apps.doomed_app:app"
ROOT = Path(__file__).resolve().parents[2]
LEASE = 2
POLICIES = ("fail", "ignore", "continue")


def _lines(out: Path, kind: str) -> list[list[str]]:
    if not out.exists():
        return []
    rows = [line.split(maxsplit=4) for line in out.read_text().splitlines()]
    return [r for r in rows if len(r) >= 4 and r[2] == kind]


def test_a_child_killed_on_every_attempt_ends_its_node(database_url: str,
                                                       tmp_path: Path) -> None:
    out, log = tmp_path / "out.txt", tmp_path / "log.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(TEST_CONVEYOR_URL=database_url, TEST_OUT=str(out), TEST_LEASE=str(LEASE),
               PYTHONPATH=str(ROOT))
    app = App(database_url, visibility_timeout=LEASE)
    app.tasks.update(doomed_app.app.tasks)
    doomed, parent = app.tasks["doomed"], app.tasks["parent"]
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "conveyor.cli.main", "worker", APP], stdout=sink,
                stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        started.append(process)
        return process

    try:
        runs = {policy: app.enqueue_flow(app.flow(
            parent.s(policy), children=[doomed.s(policy).set(on_failure=policy)]))
            for policy in POLICIES}

        def ended() -> bool:
            trees = {p: app._sync(r.tree()) for p, r in runs.items()}
            return trees["fail"].nodes[1].state == "failed" and all(
                trees[p].nodes[1].state == "succeeded" for p in ("ignore", "continue"))

        worker, deaths = start(), 0
        deadline = time.monotonic() + 180
        while not ended():
            if worker.poll() is not None:  # killed by its doomed job: start another
                assert worker.returncode == -9, log.read_text()[-3000:]
                deaths += 1
                worker = start()
            if time.monotonic() > deadline:
                raise AssertionError(f"the parents waited\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        time.sleep(LEASE * 2 + 1)  # a repeat of a parent would come after its lease
        assert deaths >= 2  # each of the two allowed receives killed a worker
        for policy, run in runs.items():
            child, top = app._sync(run.tree()).nodes
            assert child.state == "failed"
            assert "dead-letter queue after 2 receives" in (child.error or "")
            if policy == "fail":
                assert top.state == "failed" and "step 0 failed" in (top.error or "")
            else:
                assert top.state == "succeeded" and top.result == policy
        ran = sorted((r[3], r[4]) for r in _lines(out, "parent"))
        assert ran == [("continue", "[null]"), ("ignore", "[null]")]  # once each
        # every attempt of every doomed job was received (and killed): none left anywhere
        source = app._sync(app.source())
        assert isinstance(source, Broker)
        dead = app._sync(source.peek("doomed-dlq", 10))
        assert sorted(m.receive_count for m in dead) == [2, 2, 2]
        assert app._sync(source.queue_stats("doomed")).total == 0
        print(f"\ndead-letter flow test: {deaths} workers killed")
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
        app.close()
