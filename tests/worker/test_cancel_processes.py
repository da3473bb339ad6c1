"""Cancel from outside with real worker processes, on both backends: a queued job never
runs, a running async job is cancelled where it awaits, a running sync job sees the flag
and stops; the statuses end `cancelled`, and cancelling an ended job is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.errors import JobNotCancellable
from conveyor.worker import App
from tests.worker.apps import steered
from tests.worker.test_processes import Procs, _procs


@pytest.fixture
def procs(database_url: str, tmp_path: Path) -> Iterator[Procs]:
    """Worker processes of the steered app on each backend in turn."""
    for p in _procs(database_url, tmp_path):
        p.app = "tests.worker.apps.steered:app"
        yield p


class Producer:
    """The test's side: an App of the same tasks on the workers' database."""

    def __init__(self, url: str) -> None:
        self.app = App(url)
        self.app.tasks.update(steered.app.tasks)

    def enqueue(self, task: str, i: int, **options: float) -> str:
        call = self.app.tasks[task].call((i,), {}, **options)  # type: ignore[arg-type]
        return self.app.send_sync([call])[0].id

    def cancel(self, job_id: str) -> str:
        return self.app.cancel_sync(job_id).status

    def status(self, job_id: str) -> str | None:
        found = self.app._sync(self.app.job_status(job_id))
        return None if found is None else found.status


@pytest.fixture
def producer(database_url: str) -> Iterator[Producer]:
    made = Producer(database_url)
    yield made
    made.app.close()


def test_cancel_queued_and_running_jobs(procs: Procs, producer: Producer) -> None:
    async_task, sync_task = steered.wait_async.name, steered.wait_sync.name
    later = producer.enqueue(async_task, 0, delay=3600)  # due in an hour
    waiting = producer.enqueue(sync_task, 3)
    assert producer.cancel(later) == "cancelled"  # neither ever runs
    assert producer.cancel(waiting) == "cancelled"
    running_async = producer.enqueue(async_task, 1)
    running_sync = producer.enqueue(sync_task, 2)
    procs.start("--no-cron")

    def started() -> set[str]:
        return {r[3] for r in procs.lines("started")}
    procs.wait(lambda: {"1", "2"} <= started(), what="both jobs started")
    # Held by a worker: the status as recorded (its "running" may still be on its way);
    # the worker stops it at its next check.
    assert producer.cancel(running_async) in ("queued", "running")
    assert producer.cancel(running_sync) in ("queued", "running")
    procs.wait(lambda: [r[3] for r in procs.lines("cancelled")] == ["1"],
               what="the async job cancelled where it awaits")
    procs.wait(lambda: "2" in {r[3] for r in procs.lines("saw-cancel")},
               what="the sync job saw the flag")
    for job_id in (later, waiting, running_async, running_sync):
        procs.wait(lambda job_id=job_id: producer.status(job_id) == "cancelled",  # type: ignore[misc]
                   what=f"{job_id} cancelled")
    assert not {"0", "3"} & started() and procs.lines("done") == []
    with pytest.raises(JobNotCancellable) as caught:
        producer.cancel(running_async)
    assert caught.value.code == "job_not_cancellable"
