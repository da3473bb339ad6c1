"""Worker heartbeats (`broker.workers`): who is running, and what they have done.

Each worker process beats every few seconds with a `Heartbeat`; its row lives until
`ttl_seconds` after the last beat, so a worker killed without a word disappears on its own
(listings skip expired rows at once; `Broker.sweep` deletes them), and a worker that stops
cleanly removes its row. Reached in-process and through the HTTP API
(`conveyor.http.workers`) alike. Inputs are checked here, once.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from conveyor.broker import validation as v
from conveyor.errors import InvalidInput
from conveyor.heartbeats import (
    DURATION_BUCKETS,
    Heartbeat,
    Schedule,
    TaskCounts,
    WorkerInfo,
    counts_json,
    schedule_json,
)
from conveyor.models import dumps_json
from conveyor.storage.base import WorkerPutParams

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["MAX_TTL", "MIN_TTL", "Workers"]

MAX_ID = 200
MAX_HOST = 255
MAX_ITEMS = 1_000  # queues, schedules, or (queue, task) counts in one heartbeat
MAX_COUNT = 2**53
MIN_TTL = 0.1
MAX_TTL = 3_600.0
_SWEEP_BATCH = 10_000


class Workers:
    """Live workers' heartbeats (`broker.workers`)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def beat(self, heartbeat: Heartbeat) -> None:
        """Record a worker's heartbeat, replacing its last; it lives `ttl_seconds`."""
        h = _checked(heartbeat)
        detail = dumps_json({"ttl_seconds": h.ttl_seconds,
                             "schedules": [schedule_json(s) for s in h.schedules],
                             "counts": [counts_json(c) for c in h.counts]})
        await self._broker.storage.worker_put(WorkerPutParams(
            h.worker_id, h.host, h.pid, dumps_json(list(h.queues)), h.concurrency, h.running,
            detail, math.ceil(h.ttl_seconds * 1000), self._broker.now()))

    async def list(self) -> list[WorkerInfo]:
        """Live workers (their last beat within its TTL), by start time."""
        return await self._broker.storage.worker_list(self._broker.now())

    async def remove(self, worker_id: str) -> bool:
        """Forget a worker (it stopped cleanly); True when it was listed."""
        return await self._broker.storage.worker_delete(_text("worker_id", worker_id, MAX_ID))

    async def expire(self, now: int | None = None) -> int:
        """Delete rows past their TTL; called by `Broker.sweep`. Returns how many went."""
        storage = self._broker.storage
        at = self._broker.now() if now is None else now
        removed = 0
        while (n := await storage.worker_expire(at, _SWEEP_BATCH)):
            removed += n
            if n < _SWEEP_BATCH:
                break
        return removed


# validation -------------------------------------------------------------------------
def _checked(h: Any) -> Heartbeat:
    if not isinstance(h, Heartbeat):
        raise InvalidInput("A heartbeat must be a conveyor.heartbeats.Heartbeat.")
    ttl = h.ttl_seconds
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) \
            or not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidInput(f"ttl_seconds must be {MIN_TTL} to {MAX_TTL:,.0f} seconds, not "
                           f"{ttl!r:.50}.", field="ttl_seconds")
    queues = _items("queues", h.queues)
    for name in queues:
        if not isinstance(name, str) or not (v.QUEUE_NAME.fullmatch(name)
                                             or v.FIFO_QUEUE_NAME.fullmatch(name)):
            raise InvalidInput(f"queues must hold queue names, not {name!r:.100}.",
                               field="queues")
    return Heartbeat(
        _text("worker_id", h.worker_id, MAX_ID), _text("host", h.host, MAX_HOST),
        _int("pid", h.pid), tuple(queues), _int("concurrency", h.concurrency),
        _int("running", h.running), float(ttl),
        tuple(_schedule(s) for s in _items("schedules", h.schedules)),
        tuple(_counts(c) for c in _items("counts", h.counts)))


def _schedule(s: Any) -> Schedule:
    if not isinstance(s, Schedule):
        raise InvalidInput("schedules must hold Schedule values.", field="schedules")
    return Schedule(_text("schedules.name", s.name, 1000), _text("schedules.task", s.task),
                    _text("schedules.queue", s.queue), _text("schedules.schedule",
                                                             s.schedule, 1000),
                    _int("schedules.next_run_at", s.next_run_at))


def _counts(c: Any) -> TaskCounts:
    if not isinstance(c, TaskCounts):
        raise InvalidInput("counts must hold TaskCounts values.", field="counts")
    buckets = c.buckets
    if not isinstance(buckets, tuple | list) or len(buckets) != len(DURATION_BUCKETS) + 1:
        raise InvalidInput(f"counts.buckets must hold {len(DURATION_BUCKETS) + 1} counts "
                           "(one per duration bucket and one for longer runs).",
                           field="counts.buckets")
    seconds = c.seconds
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or \
            not math.isfinite(seconds) or seconds < 0:
        raise InvalidInput(f"counts.seconds must be a number of seconds, not {seconds!r:.50}.",
                           field="counts.seconds")
    return TaskCounts(_text("counts.queue", c.queue), _text("counts.task", c.task),
                      _int("counts.runs", c.runs), _int("counts.failures", c.failures),
                      _int("counts.retries", c.retries), float(seconds),
                      tuple(_int("counts.buckets", b) for b in buckets))


def _items(field: str, value: Any) -> list[Any]:
    if not isinstance(value, tuple | list) or len(value) > MAX_ITEMS:
        raise InvalidInput(f"{field} must be a list of at most {MAX_ITEMS:,} items.",
                           field=field)
    return list(value)


def _text(field: str, value: Any, limit: int = MAX_ID) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        shown = f"{len(value)} characters" if isinstance(value, str) else repr(value)[:50]
        raise InvalidInput(f"{field} must be a string of 1 to {limit} characters, not "
                           f"{shown}.", field=field)
    return value


def _int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidInput(f"{field} must be a whole number from 0 to 2^53, not "
                           f"{value!r:.50}.", field=field)
    return value
