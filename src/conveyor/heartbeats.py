"""Values of worker heartbeats: who runs, what, and with what results.

Pure data, like `conveyor.jobs`. A worker process sends a `Heartbeat` every few seconds
(`broker.workers.beat`); the broker keeps it until `ttl_seconds` after the last beat, so a
worker that dies disappears on its own, and lists them as `WorkerInfo`. Each heartbeat
carries the worker's cumulative per-task counts since it started (`TaskCounts`), which the
server sums across live workers for `/metrics` (`aggregate`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DURATION_BUCKETS", "Heartbeat", "Schedule", "ScheduleRun", "Tally", "TaskCounts",
           "TaskTally", "WorkerInfo", "aggregate", "counts_json", "counts_of", "heartbeat_json",
           "schedule_json", "schedule_of", "schedules_of", "worker_json", "worker_of"]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 300.0)
"""Upper bounds (seconds) of the run-duration histogram; a last bucket holds the rest."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule a worker runs, and when it next fires (ms since the epoch)."""

    name: str  # the schedule's name in the database (ticks are claimed by it)
    task: str
    queue: str
    schedule: str  # as a person writes it: `*/5 * * * * (UTC)`, `every 10 s`
    next_run_at: int


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """One task's runs on one queue in one worker since it started.

    `runs`: runs that ended (any way); `failures`: runs that raised an error; `retries`:
    failed runs sent back for another attempt; `seconds`: their total duration; `buckets`:
    runs per duration bucket (`DURATION_BUCKETS`, then one for longer), not cumulative."""

    queue: str
    task: str
    runs: int = 0
    failures: int = 0
    retries: int = 0
    seconds: float = 0.0
    buckets: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a worker process says about itself on each beat."""

    worker_id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int  # jobs it may run at once, over all its queues
    running: int  # jobs running now
    ttl_seconds: float  # forget it this long after this beat
    schedules: tuple[Schedule, ...] = ()
    counts: tuple[TaskCounts, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkerInfo(Heartbeat):
    """A live worker as stored: its last heartbeat and when (ms since the epoch, the
    database's clock) it first beat, last beat, and will be forgotten."""

    started_at: int = 0
    beat_at: int = 0
    expires_at: int = 0


# wire and storage forms ---------------------------------------------------------------
def schedule_json(s: Schedule) -> dict[str, Any]:
    """A schedule's JSON form."""
    return {"name": s.name, "task": s.task, "queue": s.queue, "schedule": s.schedule,
            "next_run_at": s.next_run_at}


def schedule_of(d: Mapping[str, Any]) -> Schedule:
    """A schedule from its JSON form."""
    return Schedule(d["name"], d["task"], d["queue"], d["schedule"], d["next_run_at"])


def counts_json(c: TaskCounts) -> dict[str, Any]:
    """Counts' JSON form."""
    return {"queue": c.queue, "task": c.task, "runs": c.runs, "failures": c.failures,
            "retries": c.retries, "seconds": c.seconds, "buckets": list(c.buckets)}


def counts_of(d: Mapping[str, Any]) -> TaskCounts:
    """Counts from their JSON form."""
    return TaskCounts(d["queue"], d["task"], d["runs"], d["failures"], d["retries"],
                      d["seconds"], tuple(d["buckets"]))


def heartbeat_json(h: Heartbeat) -> dict[str, Any]:
    """A heartbeat's JSON form (the body of `PUT /v1/workers/{id}`, without the id)."""
    return {"host": h.host, "pid": h.pid, "queues": list(h.queues),
            "concurrency": h.concurrency, "running": h.running, "ttl_seconds": h.ttl_seconds,
            "schedules": [schedule_json(s) for s in h.schedules],
            "counts": [counts_json(c) for c in h.counts]}


def worker_json(w: WorkerInfo) -> dict[str, Any]:
    """A live worker's JSON form (an item of `GET /v1/workers`)."""
    return {"worker_id": w.worker_id, **heartbeat_json(w), "started_at": w.started_at,
            "beat_at": w.beat_at, "expires_at": w.expires_at}


def worker_of(d: Mapping[str, Any]) -> WorkerInfo:
    """A live worker from its JSON form."""
    return WorkerInfo(d["worker_id"], d["host"], d["pid"], tuple(d["queues"]),
                      d["concurrency"], d["running"], d["ttl_seconds"],
                      tuple(schedule_of(s) for s in d.get("schedules", ())),
                      tuple(counts_of(c) for c in d.get("counts", ())),
                      d["started_at"], d["beat_at"], d["expires_at"])


# the server's sums ----------------------------------------------------------------------
def aggregate(workers: Iterable[Heartbeat]) -> dict[tuple[str, str], TaskCounts]:
    """Per (queue, task), the counts of the given workers added up."""
    out: dict[tuple[str, str], TaskCounts] = {}
    for worker in workers:
        for c in worker.counts:
            key = (c.queue, c.task)
            was = out.get(key)
            if was is None:
                out[key] = c
                continue
            out[key] = TaskCounts(
                c.queue, c.task, was.runs + c.runs, was.failures + c.failures,
                was.retries + c.retries, was.seconds + c.seconds,
                tuple(a + b for a, b in zip(was.buckets, c.buckets, strict=True)))
    return out


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    """A schedule as listed for people: once, however many workers run it."""

    schedule: Schedule
    workers: int  # live workers whose scheduler runs it


def schedules_of(workers: Iterable[Heartbeat]) -> list[ScheduleRun]:
    """Each schedule of the live workers once (every scheduler lists the same ones), with
    its earliest next run, soonest first."""
    by_name: dict[str, ScheduleRun] = {}
    for worker in workers:
        for s in worker.schedules:
            seen = by_name.get(s.name)
            if seen is None:
                by_name[s.name] = ScheduleRun(s, 1)
                continue
            soonest = s if s.next_run_at < seen.schedule.next_run_at else seen.schedule
            by_name[s.name] = ScheduleRun(soonest, seen.workers + 1)
    return sorted(by_name.values(), key=lambda r: (r.schedule.next_run_at, r.schedule.name))


# a worker's own tally -------------------------------------------------------------------
@dataclass(slots=True)
class TaskTally:
    """One task's counts on one queue in a worker's memory (its runs are the sum of the
    buckets: one fewer addition per job)."""

    failures: int = 0
    retries: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))

    def ran(self, seconds: float) -> None:
        """One run ended after `seconds` (a failed one also counts `failures`)."""
        self.seconds += seconds
        self.buckets[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1


class Tally:
    """A worker's counts in memory: a few additions per job, read once per beat."""

    def __init__(self) -> None:
        self._by: dict[tuple[str, str], TaskTally] = {}

    def of(self, queue: str, task: str) -> TaskTally:
        """The live counts of one task on one queue (a caller may keep it: the per-job
        path then adds to it without a lookup by name)."""
        t = self._by.get((queue, task))
        if t is None:
            t = self._by[(queue, task)] = TaskTally()
        return t

    def ran(self, queue: str, task: str, seconds: float, *, failed: bool) -> None:
        """One run ended, after `seconds`; `failed`: it raised an error."""
        t = self.of(queue, task)
        t.ran(seconds)
        t.failures += failed

    def know(self, queue: str, task: str) -> None:
        """List a task this worker runs on `queue` before it has run (zero counts): the
        server learns which tasks live workers have (and /metrics shows them at 0)."""
        self.of(queue, task)

    def retried(self, queue: str, task: str) -> None:
        """A failed run went back to the queue for another attempt."""
        self.of(queue, task).retries += 1

    def snapshot(self) -> tuple[TaskCounts, ...]:
        """Every task's counts so far, by queue and task."""
        return tuple(TaskCounts(q, name, sum(t.buckets), t.failures, t.retries, t.seconds,
                                tuple(t.buckets))
                     for (q, name), t in sorted(self._by.items()))
