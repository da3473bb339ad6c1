"""`Reach`: an outage of the worker's source is one warning, a reminder every 30 s, the
tracebacks at DEBUG and one line when it is over; other errors are logged as before.
`Backoff`: 0.1 s doubling to 5 s, jittered. `where`: how the log names the source."""

from __future__ import annotations

import logging
import random

import httpx
import pytest

from conveyor.client import ServerUnavailable
from conveyor.errors import StorageError, StorageUnavailable
from conveyor.reach import Backoff, Reach, outage, where


class Clock:
    """Seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _unreachable() -> ServerUnavailable:
    try:
        try:
            raise httpx.ConnectError("All connection attempts failed")
        except httpx.ConnectError as cause:
            raise ServerUnavailable("Cannot reach http://h:1: ...") from cause
    except ServerUnavailable as exc:
        return exc


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_an_outage_is_a_warning_reminders_and_a_recovery(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    reach = Reach("the server http://h:1", clock=clock)
    caplog.set_level(logging.DEBUG, logger="conveyor.worker")
    before = reach.now()
    for second in range(0, 70):  # three loops failing every second for 70 s
        clock.now = 101.0 + second
        for queue in ("a", "b", "c"):
            assert reach.error(_unreachable(), "receive from %s failed", queue)
    assert reach.down
    warnings = _lines(caplog, logging.WARNING)
    assert warnings[0] == ("the server http://h:1 is unreachable: receive from a failed "
                           "(ConnectError: All connection attempts failed); retrying")
    assert len(warnings) == 3  # the first, then after 30 s and 60 s
    assert "still unreachable after 30 s" in warnings[1]
    assert "still unreachable after 60 s" in warnings[2]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 210 and all(r.exc_info for r in debug)
    assert not any(r.exc_info for r in caplog.records if r.levelno > logging.DEBUG)

    reach.ok(before)  # a call begun before the outage proves nothing
    assert reach.down
    clock.now = 175.0
    asked = reach.now()
    clock.now = 175.5
    reach.ok(asked)
    reach.ok(asked)
    assert not reach.down
    assert _lines(caplog, logging.INFO) == [
        "the server http://h:1 is reachable again after 74.5 s down (210 calls failed "
        "meanwhile)"]


def test_other_errors_are_logged_with_their_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    reach = Reach("the server http://h:1", clock=Clock())
    caplog.set_level(logging.DEBUG)
    other = logging.getLogger("conveyor.cron")
    for _ in range(2):
        assert not reach.error(StorageError("a bug"), "cron tick %s failed", 7, logger=other)
    assert not reach.down
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [(r.name, r.getMessage()) for r in errors] == [("conveyor.cron",
                                                           "cron tick 7 failed")] * 2
    assert all(r.exc_info for r in errors)
    # A database that is down is an outage too, said as "unavailable".
    assert reach.error(StorageUnavailable("PostgreSQL is unavailable: refused"), "ack")
    assert _lines(caplog, logging.WARNING) == [
        "the server http://h:1 is unavailable: ack (PostgreSQL is unavailable: refused); "
        "retrying"]
    assert outage(_unreachable()) and not outage(RuntimeError())


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    backoff = Backoff(rng=random.Random(7))
    pauses = [backoff.next() for _ in range(10)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0]
    for pause, ceiling in zip(pauses, ceilings, strict=True):
        assert ceiling / 2 <= pause <= ceiling
    backoff.reset()
    assert backoff.next() <= 0.1


def test_where_names_the_source_without_a_password() -> None:
    class Remote:
        url = "http://127.0.0.1:8080"

    assert where(Remote(), None) == "the server http://127.0.0.1:8080"
    assert where(None, "https://q.example") == "the server https://q.example"
    assert where(None, None) == "the embedded database"
    assert where(object(), "postgresql://ada:s3cret@db:5432/q") == \
        "the database postgresql://ada:***@db:5432/q"
    assert where(object(), "postgresql://ada@db/q") == "the database postgresql://ada@db/q"
    assert where(object(), "sqlite:///x.db") == "the database sqlite:///x.db"
