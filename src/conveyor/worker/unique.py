"""Unique and debounced tasks: the keys their jobs claim (`conveyor.models.Claim`).

River's unique options are the model. A unique task's job claims a key made of the task's
name and, as chosen, its arguments (or a key function of them), its queue and the current
period; while the key is held, enqueueing the same key again returns the holder's `Job`
with `duplicate=True` and writes nothing. The claim is taken in the send's own transaction,
so it holds across processes and machines. It is released when the job ends in a state
outside `by_state`, and lapses at the end of its period (without a period: the job's
delay plus its status keep time).

A debounced task's job claims `debounce:<task>:<key>` for its window: an enqueue inside
the window replaces the waiting job's arguments and starts the window again (the last
enqueue wins; the job runs once, a window after it).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.models import Claim

__all__ = ["LIVE_STATES", "UNIQUE_STATES", "Unique", "debounce_claim", "unique_claim"]

LIVE_STATES = frozenset({"queued", "running", "retrying"})
"""States a unique job always holds its key in (as River's required states)."""

UNIQUE_STATES = frozenset({*LIVE_STATES, "succeeded", "dead", "cancelled"})
"""Every state `by_state` may name."""

DEFAULT_STATES = frozenset({*LIVE_STATES, "succeeded"})


@dataclass(frozen=True, slots=True)
class Unique:
    """How a task's jobs are unique (`App.task(unique=Unique(...))`, or `unique=True`).

    - `by_args`: the arguments are part of the key (False: one job of the task at a time).
    - `key`: a function of the job's arguments naming the key instead of the arguments.
    - `by_queue`: the queue is part of the key.
    - `by_period`: seconds; the key holds within the current period (aligned to the
      epoch), so at most one job per period.
    - `by_state`: states in which a job holds its key: always queued, running and
      retrying; by default also succeeded (dead and cancelled jobs free their key).
    """

    by_args: bool = True
    key: Callable[..., str] | None = None
    by_queue: bool = False
    by_period: float | None = None
    by_state: frozenset[str] = DEFAULT_STATES

    def __post_init__(self) -> None:
        if self.by_period is not None and not 1 <= self.by_period <= 366 * 86_400:
            raise InvalidInput("by_period must be 1 s to 366 days.", field="by_period")
        states = frozenset(self.by_state)
        if not states <= UNIQUE_STATES or not states >= LIVE_STATES:
            raise InvalidInput(
                "by_state must hold queued, running and retrying, and may add succeeded, "
                "dead and cancelled.", field="by_state")
        object.__setattr__(self, "by_state", states)


def _digest(parts: Sequence[Any]) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def unique_claim(unique: Unique, task: str, queue: str, args: Sequence[Any],
                 kwargs: Mapping[str, Any], now: float, delay: int | None,
                 keep_seconds: int) -> Claim:
    """The claim of one job of a unique task enqueued at `now` (seconds)."""
    parts: list[Any] = [task]
    if unique.by_queue:
        parts.append(queue)
    if unique.key is not None:
        parts.append(str(unique.key(*args, **kwargs)))
    elif unique.by_args:
        parts.append([list(args), dict(kwargs)])
    if unique.by_period is not None:
        period = unique.by_period
        bucket = math.floor(now / period)
        parts.append(bucket)
        seconds = max(1, math.ceil((bucket + 1) * period - now))
    else:
        seconds = (delay or 0) + keep_seconds
    return Claim(f"unique:{task[:100]}:{_digest(parts)}", seconds)


def debounce_claim(task: str, window: int, key: Callable[..., str] | None,
                   args: Sequence[Any], kwargs: Mapping[str, Any]) -> Claim:
    """The claim of one job of a debounced task: the key (the task, or `key(*args)`) held
    for the window, replacing a job still waiting."""
    name = "" if key is None else str(key(*args, **kwargs))
    return Claim(f"debounce:{task[:100]}:{_digest([task, name])}", window, replace=True)
