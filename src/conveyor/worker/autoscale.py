"""The autoscaler's decision, apart from processes so it can be tested on numbers alone.

Grow by one process while there is a backlog and it (or the age of the oldest message) is
growing; shrink by one after `idle_checks` checks in a row with nothing visible and nothing
in flight. Never outside `[minimum, maximum]`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """The app's queues at one check: visible backlog, in flight, oldest age (s)."""

    visible: int
    in_flight: int
    oldest_age: float


class Autoscaler:
    """Decides the pool's size from successive samples."""

    def __init__(self, minimum: int, maximum: int, *, idle_checks: int = 3) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError("autoscale needs 1 <= MIN <= MAX")
        self.minimum = minimum
        self.maximum = maximum
        self.idle_checks = idle_checks
        self._previous: Sample | None = None
        self._idle = 0

    def decide(self, current: int, sample: Sample) -> int:
        """The size to have now, given the size we have and a new sample."""
        previous, self._previous = self._previous, sample
        target = max(self.minimum, min(self.maximum, current))
        if sample.visible == 0 and sample.in_flight == 0:
            self._idle += 1
            if self._idle >= self.idle_checks and target > self.minimum:
                self._idle = 0
                return target - 1
            return target
        self._idle = 0
        if sample.visible > 0 and previous is not None and target < self.maximum and (
                sample.visible > previous.visible or sample.oldest_age > previous.oldest_age):
            return target + 1
        return target
