"""`/metrics` figures of the job system: tracked jobs by queue, task and status; live workers;
and per-task runs, failures, retries and run durations reported by the workers.

Workers count in memory and send their cumulative counts (since each started) in every
heartbeat (`conveyor.heartbeats`); a scrape sums them over the workers alive at that moment.
So a worker that stops or dies takes its counts with it: a sum can drop, which Prometheus's
`rate()` and `increase()` read as a counter reset (for runs, failures, retries, and the
histogram's buckets alike). Counts of a dead worker's last few seconds (since its last
beat) are never reported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from conveyor.broker.broker import Broker
from conveyor.heartbeats import DURATION_BUCKETS, WorkerInfo, aggregate
from conveyor.jobs import JOB_STATUSES

log = logging.getLogger("conveyor.metrics")

_SUMMED = ("Summed over live workers, each since it started: drops when a worker stops "
           "(rate() reads it as a counter reset).")


class JobSystemCollector(Collector):
    """Job and worker figures, read before each scrape (collectors cannot await)."""

    def __init__(self) -> None:
        self.workers: list[WorkerInfo] | None = None
        self.job_counts: dict[tuple[str, str, str], int] | None = None

    async def refresh(self, broker: Broker) -> None:
        """Read the live workers and the job counts (None when unavailable)."""
        self.workers = await _quietly(broker.workers.list(), "live workers")
        self.job_counts = await _quietly(broker.jobs.status_counts_by_task(), "job counts")

    def collect(self) -> Iterable[Any]:
        if self.job_counts is not None:
            yield self._jobs(self.job_counts)
        if self.workers is not None:
            yield from self._workers(self.workers)

    @staticmethod
    def _jobs(counts: dict[tuple[str, str, str], int]) -> GaugeMetricFamily:
        jobs = GaugeMetricFamily(
            "conveyor_jobs", "Tracked jobs (tasks with track=True) by queue, task and status, "
            "while their statuses are kept; every status of a (queue, task) seen.",
            labels=["queue", "task", "status"])
        for queue, task in sorted({(q, t) for q, t, _ in counts}):
            for status in JOB_STATUSES:
                jobs.add_metric([queue, task, status], counts.get((queue, task, status), 0))
        return jobs

    @staticmethod
    def _workers(workers: list[WorkerInfo]) -> Iterable[Any]:
        yield GaugeMetricFamily("conveyor_workers", "Live worker processes (last heartbeat "
                                "within its TTL).", value=len(workers))
        yield GaugeMetricFamily("conveyor_workers_running_jobs", "Jobs running now in live "
                                "workers, as of their last heartbeat.",
                                value=sum(w.running for w in workers))
        yield GaugeMetricFamily("conveyor_workers_concurrency", "Jobs live workers may run "
                                "at once, all together.",
                                value=sum(w.concurrency for w in workers))
        labels = ["queue", "task"]
        runs = CounterMetricFamily("conveyor_task_runs", "Runs of a task that ended (any "
                                   f"way). {_SUMMED}", labels=labels)
        failures = CounterMetricFamily("conveyor_task_failures", "Runs of a task that raised "
                                       f"an error. {_SUMMED}", labels=labels)
        retries = CounterMetricFamily("conveyor_task_retries", "Runs of a task sent back for "
                                      f"another attempt. {_SUMMED}", labels=labels)
        durations = HistogramMetricFamily("conveyor_task_duration_seconds", "How long runs "
                                          f"of a task took. {_SUMMED}", labels=labels)
        for (queue, task), c in sorted(aggregate(workers).items()):
            runs.add_metric([queue, task], c.runs)
            failures.add_metric([queue, task], c.failures)
            retries.add_metric([queue, task], c.retries)
            cumulative, buckets = 0, []
            for bound, count in zip((*DURATION_BUCKETS, float("inf")), c.buckets,
                                    strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}",
                                cumulative))
            durations.add_metric([queue, task], buckets, c.seconds)
        yield from (runs, failures, retries, durations)


async def _quietly(aw: Any, what: str) -> Any:
    """The awaited value, or None when it failed: figures are optional, a scrape must not
    fail for them."""
    try:
        return await aw
    except Exception:
        log.debug("%s unavailable", what, exc_info=True)
        return None
