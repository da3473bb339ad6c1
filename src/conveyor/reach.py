"""Whether a source answers: an outage logged as a few lines, not a traceback a call.

While the server a worker talks to (or its database) is down, every loop of the worker
fails: each queue's receive, the heartbeat, the cancel check, lease extensions, status
writes. Each of them reports its failure to the worker's one `Reach`, which logs

- one WARNING when the source stops answering: what failed, where, why, "retrying";
- at most one reminder WARNING per `REMIND_EVERY` seconds while it stays down, with how
  long it has been down;
- each failure's traceback at DEBUG only (the cause is the same every time);
- one INFO line once a call started after the outage began works again, with how long it
  was down.

Only "cannot answer now" errors (`StorageUnavailable`: the server unreachable or answering
503, the database down) count as an outage; any other error is logged where it happened,
with its traceback, as before. Nothing here changes what is retried or when a lease ends:
it only decides what is logged. `Backoff` is the receive loop's pause between tries.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from conveyor.errors import ServerUnavailable, StorageUnavailable

__all__ = ["REMIND_EVERY", "Backoff", "Reach", "outage", "where"]

log = logging.getLogger("conveyor.worker")

REMIND_EVERY = 30.0
"""Seconds between reminders that the source is still down."""


def outage(exc: BaseException) -> bool:
    """True for an error that says the source cannot answer now (not what was asked)."""
    return isinstance(exc, StorageUnavailable)


class Reach:
    """One source's outages, as the worker's loops see them (see the module's doc)."""

    def __init__(self, where: str = "the source", *, remind_every: float = REMIND_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.where = where
        self.remind_every = remind_every
        self._clock = clock
        self.down_since: float | None = None  # (clock) the outage's first failure
        self._reminded = 0.0
        self._failures = 0  # calls failed in this outage

    @property
    def down(self) -> bool:
        """True from an outage's first failure until a call works again."""
        return self.down_since is not None

    def now(self) -> float:
        """The time to pass to `ok` for a call about to start."""
        return self._clock()

    def error(self, exc: BaseException, message: str, *args: object,
              logger: logging.Logger = log) -> bool:
        """Log a call that raised `exc` (`message % args` says which and what follows):
        an outage's failure by this Reach's lines (True), any other error at ERROR with
        its traceback on `logger`, as a failure always was (False)."""
        if not outage(exc):
            logger.error(message, *args, exc_info=exc)
            return False
        what = message % args if args else message
        log.debug("%s (%s: %s)", what, self.where, _cause(exc), exc_info=exc)
        now = self._clock()
        self._failures += 1
        if self.down_since is None:
            self.down_since = self._reminded = now
            log.warning("%s is %s: %s (%s); retrying", self.where, _state(exc), what,
                        _cause(exc))
        elif now - self._reminded >= self.remind_every:
            self._reminded = now
            log.warning("%s is still %s after %.0f s: %s (%s); %d calls failed so far; "
                        "retrying", self.where, _state(exc), now - self.down_since, what,
                        _cause(exc), self._failures)
        return True

    def ok(self, asked_at: float) -> None:
        """A call that started at `asked_at` (`now()`) worked: it ends an outage that began
        before it (one that began later, while it was under way, is not over)."""
        since = self.down_since
        if since is None or asked_at < since:
            return
        log.info("%s is reachable again after %.1f s down (%d calls failed meanwhile)",
                 self.where, self._clock() - since, self._failures)
        self.down_since = None
        self._failures = 0


class Backoff:
    """Pauses between tries of a call that keeps failing: `first` seconds, doubling up to
    `cap`, each drawn from the upper half ("equal jitter", as job retries are), so the
    loops of many workers spread out but none comes back sooner than half its pause."""

    def __init__(self, first: float = 0.1, cap: float = 5.0,
                 rng: random.Random | None = None) -> None:
        self.first = first
        self.cap = cap
        self._rng = rng or random.Random()
        self._tries = 0

    def next(self) -> float:
        """The pause before the next try."""
        ceiling = min(self.cap, self.first * 2.0 ** min(self._tries, 60))
        self._tries += 1
        return ceiling * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        """A try worked: the next failure starts from `first` again."""
        self._tries = 0


def where(source: object, url: str | None) -> str:
    """How the log names a worker's source: a server by its URL, a database by its URL
    without a password, or the embedded file."""
    server = getattr(source, "url", None)
    if isinstance(server, str):
        return f"the server {server}"
    if not url:
        return "the embedded database"
    if url.startswith(("http://", "https://")):
        return f"the server {url}"
    netloc = urlsplit(url).netloc
    if "@" in netloc and ":" in netloc.rpartition("@")[0]:  # (a log must not hold a secret)
        user, _, host = netloc.rpartition("@")
        url = url.replace(netloc, f"{user.partition(':')[0]}:***@{host}", 1)
    return f"the database {url}"


def _state(exc: BaseException) -> str:
    # No answer at all, or an answer that says "not now" (503, the database down).
    return "unreachable" if isinstance(exc, ServerUnavailable) else "unavailable"


def _cause(exc: BaseException) -> str:
    """The root of `exc`, one line: the transport's error says more than the wrapper."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root) or type(root).__name__
    return f"{type(root).__name__}: {text}" if root is not exc else text
