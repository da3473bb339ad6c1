"""Per-key concurrency with real worker processes, on both backends: a key's limit holds
across two processes, a key enqueued behind another's backlog finishes long before that
backlog does, and a killed worker's slots come back when their lease lapses."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.errors import InvalidInput
from conveyor.worker import App
from tests.worker.apps import steered
from tests.worker.test_processes import Procs, _procs


@pytest.fixture
def procs(database_url: str, tmp_path: Path) -> Iterator[Procs]:
    """Worker processes of the steered app on each backend in turn."""
    for p in _procs(database_url, tmp_path):
        p.app = "tests.worker.apps.steered:app"
        yield p


@pytest.fixture
def producer(database_url: str) -> Iterator[App]:
    app = App(database_url)
    app.tasks.update(steered.app.tasks)
    yield app
    app.close()


def send(producer: App, task: str, calls: list[tuple[str, int]]) -> None:
    producer.send_sync([producer.tasks[task].call(c, {}) for c in calls])


def most_at_once(rows: list[list[str]], key: str) -> int:
    """The most jobs of `key` running at once, from begin/end lines of every process."""
    events = sorted((float(r[1]), 1 if r[2] == "begin" else -1)
                    for r in rows if r[3] == key)
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def test_the_limit_holds_across_processes_and_keys_interleave(procs: Procs,
                                                              producer: App) -> None:
    name = steered.keyed.name
    send(producer, name, [("A", i) for i in range(60)])
    send(producer, name, [("B", i) for i in range(10)])  # behind A's backlog
    procs.start("--no-cron")
    procs.start("--no-cron")

    def ended(key: str) -> list[list[str]]:
        return [r for r in procs.lines("end") if r[3] == key]
    procs.wait(lambda: len(ended("A")) == 60 and len(ended("B")) == 10, timeout=60,
               what="all jobs ended")
    rows = procs.lines("begin") + procs.lines("end")
    assert most_at_once(rows, "A") == 2 and most_at_once(rows, "B") == 2
    assert len({r[0] for r in procs.lines("begin")}) == 2  # both processes worked
    # 60 A's at 2 at a time take 3 s or more; B's 10 were not held up behind them.
    last_b = max(float(r[1]) for r in ended("B"))
    last_a = max(float(r[1]) for r in ended("A"))
    assert last_a - last_b > 1.5, (last_a, last_b)


def test_a_killed_workers_slots_come_back(procs: Procs, producer: App) -> None:
    name = steered.keyed_hang.name
    send(producer, name, [("K", 0)])  # key K has one slot
    first = procs.start("--no-cron", TEST_LEASE="2")
    procs.wait(lambda: procs.lines("hang") != [], what="job 0 hanging with K's slot")
    send(producer, name, [("K", 1)])
    time.sleep(1.5)
    assert procs.lines("end") == []  # job 1 waits for the slot job 0 holds
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = procs.start("--no-cron", TEST_LEASE="2")
    # Both leases lapse (2 s), then the dead worker's slot (5 s): both jobs run there.
    procs.wait(lambda: sorted(r[4] for r in procs.lines("end")) == ["0", "1"], timeout=30,
               what="both jobs ended in the second worker")
    assert {r[0] for r in procs.lines("end")} == {str(second.pid)}


def test_options_are_checked() -> None:
    app = App("sqlite:///:memory:")
    with pytest.raises(InvalidInput) as caught:
        app.task(concurrency_key=lambda x: x)(lambda x: None)
    assert caught.value.field == "key_concurrency"
    with pytest.raises(InvalidInput):
        app.task(queue="q.fifo", concurrency_key=lambda x: x, key_concurrency=1)(
            lambda x: None)
    with pytest.raises(InvalidInput):
        app.task(concurrency_key=lambda x: x, key_concurrency=0)(lambda x: None)
