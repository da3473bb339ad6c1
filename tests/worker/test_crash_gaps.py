"""Kills at the wrong moment, for real: a worker killed between claiming a cron tick and
sending its job, and one killed during a tracked job's last attempt on a queue with
`max_receive_count`. Neither may lose the tick or leave the job's status wrong for good."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.broker.broker import Broker
from conveyor.worker import App
from tests.worker.apps import crashy
from tests.worker.helpers import eventually
from tests.worker.test_processes import Procs, _procs

APP = "tests.worker.apps.crashy:app"


@pytest.fixture
def crashy_procs(database_url: str, tmp_path: Path) -> Iterator[Procs]:
    """Worker processes of the crashy App, on each backend in turn."""
    for procs in _procs(database_url, tmp_path):
        procs.app = APP
        yield procs


def _ticks(procs: Procs, kind: str) -> list[str]:
    return [r[3] for r in procs.lines(kind)]


def test_a_tick_claimed_by_a_killed_scheduler_is_sent_once(crashy_procs: Procs) -> None:
    procs = crashy_procs
    doomed = procs.start("--queues", "crashy-cron", TEST_HANG_SEND="1", TEST_CRON_LEASE="1")
    procs.wait(lambda: bool(_ticks(procs, "claimed")), timeout=20, what="a tick claimed")
    doomed.kill()  # between its claim and its send
    doomed.wait()
    (lost,) = _ticks(procs, "claimed")
    heir = procs.start("--queues", "crashy-cron", TEST_CRON_LEASE="1")
    # The heir claims ticks of its own every 2 s; their answers name the lapsed one.
    procs.wait(lambda: lost in _ticks(procs, "ran"), timeout=15,
               what=f"the killed scheduler's tick {lost} sent by the next one")
    procs.wait(lambda: len(set(_ticks(procs, "ran"))) >= 3, timeout=15,
               what="the heir's own ticks")
    heir.kill()
    heir.wait()
    ran = _ticks(procs, "ran")
    assert ran.count(lost) == 1
    assert len(ran) == len(set(ran)), "a tick ran twice"


async def test_a_job_killed_in_its_last_attempt_ends_dead(crashy_procs: Procs) -> None:
    procs = crashy_procs
    app = App(procs.url, visibility_timeout=1)
    app.tasks.update(crashy.app.tasks)
    try:
        (job,) = await app.send([crashy.last_chance.call((1,), {})])
        doomed = procs.start("--queues", "crashy-final", "--no-cron", TEST_LEASE="1")
        await eventually(lambda: _status_is(app, job.id, "running"), timeout=20,
                         what="the job running")
        doomed.kill()  # in attempt 1 of 1
        doomed.wait()
        killed = time.monotonic()
        # The next receive, after the lease, finds it over max_receive_count (1) and moves
        # it to the dead-letter queue: the job must say so.
        procs.start("--queues", "crashy-final", "--no-cron", TEST_LEASE="1")
        await eventually(lambda: _status_is(app, job.id, "dead"), timeout=15,
                         what="the job dead")
        assert time.monotonic() - killed < 15
        found = await app.job_status(job.id)
        assert found is not None and found.error and "dead-letter queue" in found.error
        source = await app.source()
        assert isinstance(source, Broker)
        attempts = await source.storage.job_attempts(job.id)
        assert [(a.attempt, a.outcome) for a in attempts] == [(1, "dead")]
        assert (await source.queue_stats("crashy-final-dlq")).visible == 1
        assert len(procs.lines("started")) == 1  # never run again
    finally:
        await app.aclose()


async def _status_is(app: App, job_id: str, status: str) -> bool:
    found = await app.job_status(job_id)
    return found is not None and found.status == status
