"""A sync job cancelled from outside that does not look at the flag runs to its end, and is
named by every cancel check meanwhile: the worker says it was cancelled once per run, not
once per check."""

from __future__ import annotations

import logging
import threading

import pytest

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.worker import App, Worker, WorkerOptions
from tests.worker.helpers import eventually, running

CHECK = 0.05  # seconds between cancel checks
CHECKS = 12  # checks the job lives through after its cancel


async def test_a_cancelled_sync_job_is_logged_once(broker: Broker, clock: ManualClock,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    app = App(clock=clock, visibility_timeout=30)
    app.use(broker)
    began, cancelled = threading.Event(), threading.Event()

    @app.task(queue="stubborn", track=True)
    def stubborn() -> str:
        began.set()
        cancelled.wait(10)  # (set by the test once the cancel is asked for)
        threading.Event().wait(CHECK * CHECKS)  # checks name it all this time
        return "ran to its end"

    job = await stubborn.aenqueue()
    options = WorkerOptions(wait_seconds=0, cancel_interval=CHECK, shutdown_grace=1)
    with caplog.at_level(logging.INFO, logger="conveyor.worker"):
        async with running(Worker(app, options)):
            await eventually(began.is_set, what="the job running")
            assert (await broker.jobs.cancel(job.id)).status in ("queued", "running")
            cancelled.set()
            await eventually(lambda: _ended(app, job.id), what="the job's end")
    said = [r for r in caplog.records if "cancelled from outside" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert job.id in said[0].getMessage() and said[0].levelno == logging.INFO
    # A sync job that never checks keeps its own outcome (README: Cancel).
    status = await app.job_status(job.id)
    assert status is not None and status.status == "succeeded"


async def _ended(app: App, job_id: str) -> bool:
    status = await app.job_status(job_id)
    return status is not None and status.status not in ("queued", "running")
