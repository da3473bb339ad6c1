"""Retry policy: exponential backoff with jitter, as whole seconds for the broker's `retry`."""

from __future__ import annotations

import math
import random

from conveyor.worker.task import TaskOptions


def backoff_seconds(options: TaskOptions, attempt: int, rng: random.Random | None = None
                    ) -> int:
    """The delay before the run after `attempt` (1 = the first run failed).

    `base * 2**(attempt-1)`, capped at `retry_backoff_max`, then "equal jitter": a uniform
    draw from the upper half, so retries of many jobs failing together spread out but never
    come back sooner than half the backoff. Rounded up to whole seconds (the broker's unit).
    """
    if options.retry_backoff <= 0:
        return 0
    ceiling = min(options.retry_backoff_max,
                  options.retry_backoff * 2.0 ** min(max(attempt - 1, 0), 60))
    draw = (rng or random).uniform(0.5, 1.0)
    return max(1, math.ceil(ceiling * draw))


def is_final(options: TaskOptions, attempt: int) -> bool:
    """True when the run numbered `attempt` was the last one allowed."""
    return attempt > options.max_retries
