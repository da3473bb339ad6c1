"""Two real worker processes (one on the database, one through a server) appear in
`GET /v1/workers` and `conveyor workers`; their per-task runs and failures add up in
/metrics; after `kill -9` one disappears within its TTL; a clean stop removes the other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.worker import App
from tests.http.server import ServerProcess, conveyor_command, start_server
from tests.worker.apps import beating

APP = "tests.worker.apps.beating:app"
ROOT = Path(__file__).resolve().parents[2]
BEAT = 0.3  # seconds between beats: forgotten 0.9 s after the last
# (concurrency: fine 4, broken 1, the cron task the default 10)


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = start_server(tmp_path / "server", ["--database", database_url, "--no-sqs"])
    yield process
    process.stop()


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(TEST_CONVEYOR_URL=url, PYTHONPATH=str(ROOT))
    return env


def _wait(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    # 60 s: with coverage on a loaded machine, workers once took over 20 s to start jobs
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.05)
    return result


def _metrics(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = http.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_two_workers_listed_counted_and_expired(database_url: str, server: ServerProcess,
                                                tmp_path: Path) -> None:
    # Jobs first: the queues then exist with their dead-letter settings before any worker
    # starts (a worker's broker caches queue attributes for a second).
    app = App(database_url)
    app.tasks.update(beating.app.tasks)
    try:
        app.send_sync([app.tasks["fine"].call((i,), {}) for i in range(10)]
                      + [app.tasks["broken"].call((i,), {}) for i in range(3)])
    finally:
        app.close()
    log = (tmp_path / "workers.log").open("ab")
    started: list[subprocess.Popen[bytes]] = []
    try:
        for url in (database_url, server.url):  # in-process broker, and through the server
            started.append(subprocess.Popen(
                [sys.executable, "-m", "conveyor.cli.main", "worker", APP, "--url", url,
                 "--heartbeat", str(BEAT)], stdout=log, stderr=subprocess.STDOUT,
                env=_env(database_url), cwd=ROOT))
        on_db, on_server = started
        with httpx.Client(base_url=server.url, timeout=10) as http:
            def listed() -> list[dict[str, Any]]:
                workers: list[dict[str, Any]] = http.get("/v1/workers").json()["workers"]
                return workers

            _wait(lambda: len(listed()) == 2, "both workers listed")
            assert {w["pid"] for w in listed()} == {on_db.pid, on_server.pid}
            w = listed()[0]
            assert set(w["queues"]) == {"beat-ok", "beat-bad", "default"}
            assert w["concurrency"] == 4 + 1 + 10 and w["ttl_seconds"] == pytest.approx(0.9)
            assert [s["schedule"] for s in w["schedules"]] == ["every 3600 s"]

            ok = (("queue", "beat-ok"), ("task", "fine"))
            bad = (("queue", "beat-bad"), ("task", "broken"))
            _wait(lambda: (m := _metrics(http)).get(("conveyor_task_runs_total", ok)) == 10
                  and m.get(("conveyor_task_runs_total", bad)) == 6,
                  "every run counted across both workers")
            m = _metrics(http)
            assert m[("conveyor_task_failures_total", ok)] == 0
            assert m[("conveyor_task_failures_total", bad)] == 6
            assert m[("conveyor_task_retries_total", bad)] == 3
            assert m[("conveyor_task_duration_seconds_count", ok)] == 10
            assert m[("conveyor_workers", ())] == 2

            cli = [*conveyor_command(), "workers", "--url", server.url]
            lines = subprocess.run([*cli, "-o", "json"], capture_output=True, check=True,
                                   env=_env(database_url)).stdout.decode().splitlines()
            assert {orjson.loads(line)["pid"] for line in lines} == {on_db.pid, on_server.pid}
            table = subprocess.run(cli, capture_output=True, check=True,
                                   env=_env(database_url)).stdout.decode().splitlines()
            assert table[0].split()[:4] == ["WORKER", "HOST", "PID", "QUEUES"]
            assert {int(row.split()[2]) for row in table[1:]} == {on_db.pid, on_server.pid}
            schedules = subprocess.run([*cli, "--schedules"], capture_output=True, check=True,
                                       env=_env(database_url)).stdout.decode().splitlines()
            assert "every 3600 s" in schedules[1] and schedules[1].split()[-1] == "2"

            on_db.kill()  # kill -9: no goodbye; gone once its TTL runs out
            on_db.wait()
            killed = time.monotonic()
            _wait(lambda: [w["pid"] for w in listed()] == [on_server.pid],
                  "the killed worker forgotten", timeout=10)
            assert time.monotonic() - killed < 0.9 + 3.0  # its TTL, plus slack for polling

            on_server.send_signal(signal.SIGTERM)  # a clean stop says goodbye at once
            assert on_server.wait(20) == 0
            assert listed() == []
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
        log.close()
