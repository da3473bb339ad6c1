"""Cross-process wake-ups while the database cannot take them: the signal is tried again in
the background, the outage is logged once (no traceback, no "Task exception was never
retrieved"), and a long poll in another process still gets what is sent (outside probe:
pg_terminate_backend under load left unretrieved StorageUnavailable tasks in the log)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time

import pytest

from conveyor.broker.broker import Broker
from conveyor.broker.wakeup import Throttle
from conveyor.errors import StorageUnavailable
from conveyor.storage.factory import storage_from_url
from tests.faults.test_postgres_outage import terminate_backends
from tests.support.messages import bodies, send
from tests.support.waiting import until_waiting


class FlakySignal:
    """A signal that fails while `down`, recording the queues it delivered."""

    def __init__(self) -> None:
        self.down = True
        self.delivered: list[int] = []
        self.tries = 0

    async def __call__(self, queue_id: int) -> None:
        self.tries += 1
        if self.down:
            raise StorageUnavailable("PostgreSQL is unavailable: connection was closed")
        self.delivered.append(queue_id)


def _unretrieved(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if "never retrieved" in r.getMessage()]


async def test_a_failed_trailing_signal_is_retried_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flaky = FlakySignal()
    throttle = Throttle(flaky, interval=0.05, retry_pauses=(0.05, 0.05, 0.05, 0.05))
    await throttle(7)  # the leading edge fails: not raised, tried again in the background
    await throttle(7)  # within the interval: folded into the pending one
    await asyncio.sleep(0.12)
    flaky.down = False
    for _ in range(100):
        if flaky.delivered:
            break
        await asyncio.sleep(0.01)
    await throttle.close()
    gc.collect()
    await asyncio.sleep(0)
    assert flaky.delivered == [7]
    assert flaky.tries >= 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "the database is unavailable" in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    assert any("reachable again" in r.getMessage() for r in caplog.records
               if r.levelno == logging.INFO)
    assert not _unretrieved(caplog.records)


async def test_a_signal_that_never_gets_through_ends_quietly(
        caplog: pytest.LogCaptureFixture) -> None:
    flaky = FlakySignal()
    throttle = Throttle(flaky, interval=0.01, retry_pauses=(0.01, 0.01))
    await throttle(1)
    await throttle(1)
    await asyncio.sleep(0.2)
    gc.collect()
    await asyncio.sleep(0)
    assert flaky.tries == 3  # the leading edge, then one pending signal's two more tries
    assert not throttle._pending
    assert not _unretrieved(caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.postgres
@pytest.mark.timeout(60)
async def test_terminated_backends_under_sends_and_long_polls(
        postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    database = postgres_url.rsplit("/", 1)[1]
    sender = Broker(storage_from_url(postgres_url), sweep_interval=None)
    # Its watcher looks only every 30 s: a prompt answer can only come from a signal.
    waiter = Broker(storage_from_url(postgres_url), sweep_interval=None, poll_interval=30)
    await sender.start()
    await waiter.start()
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            with contextlib.suppress(StorageUnavailable):
                await send(sender, "busy", "x")

    try:
        await sender.create_queue("busy")
        await sender.create_queue("quiet")
        loads = [asyncio.create_task(load()) for _ in range(8)]
        for _ in range(4):
            await asyncio.sleep(0.4)
            await asyncio.to_thread(terminate_backends, postgres_url, database)
        await asyncio.sleep(0.4)
        stop.set()
        await asyncio.gather(*loads)
        # After the outage: a long poll in the other process gets a message promptly.
        await asyncio.sleep(1.5)  # the LISTEN connection is back (it retries each second)
        waiting = asyncio.create_task(waiter.receive("quiet", wait_seconds=20))
        await until_waiting(waiter, 1)
        started = time.monotonic()
        for _ in range(3):  # a send may meet a pooled connection the outage broke
            with contextlib.suppress(StorageUnavailable):
                await send(sender, "quiet", "after")
                break
        got = await asyncio.wait_for(waiting, 10)
        assert bodies(got) == ["after"]
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        await sender.close()
        await waiter.close()
    gc.collect()
    await asyncio.sleep(0)
    assert not _unretrieved(caplog.records)
    tracebacks = [r.getMessage() for r in caplog.records
                  if r.exc_info and r.levelno >= logging.WARNING]
    assert not tracebacks, tracebacks
