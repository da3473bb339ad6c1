"""Clocks. Production passes none (the database's clock rules); tests pass a ManualClock."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
"""Returns the current time in milliseconds since the epoch."""


def system_clock() -> int:
    """This machine's wall clock, in milliseconds."""
    return int(time.time() * 1000)


class ManualClock:
    """A clock that moves only when told to, so tests never sleep to see a lease expire."""

    def __init__(self, start_ms: int | None = None) -> None:
        self.ms = system_clock() if start_ms is None else start_ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        """Move forward by `seconds`."""
        self.ms += int(seconds * 1000)
