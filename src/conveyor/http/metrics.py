"""`GET /metrics` in the Prometheus text format, and what feeds it.

`install(app)` gives an app its `Monitor` (counts and time series, `app.state.monitor`), its
`Metrics` (`app.state.metrics`, whose `registry` other parts may add collectors to), the
request-log middleware, and a lifespan that samples in the background.

Per queue: depth gauges (visible, in flight, delayed, dead letters, oldest age) read at
scrape time from the broker's cached stats, and counters of messages sent, received, deleted
and dead-lettered by this process. The per-queue gauges cover at most `QUEUE_SERIES` (100)
queues, the deepest first, then the others by name, so a server with 10,000 queues still
scrapes small; `conveyor_queues` and `conveyor_queues_messages` count and sum all of them.
Per route template: request counts by status and a latency histogram. Notification
deliveries by channel and status (`broker.ledger`) when the storage has them. Tracked jobs
by queue, task and status, live workers, and per-task runs, failures, retries and durations
from the workers' heartbeats: see `worker_metrics`.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from conveyor.broker.broker import Broker
from conveyor.dashboard.series import Monitor, Snapshot
from conveyor.dashboard.views import delivery_counts
from conveyor.http.requestlog import RequestLog
from conveyor.http.worker_metrics import JobSystemCollector
from conveyor.models import SnapshotHold, TableHealth

log = logging.getLogger("conveyor.metrics")

router = APIRouter(tags=["health"])

QUEUE_SERIES = 100
"""Queues with their own series at most (the deepest, then by name)."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 25.0)


class QueueCollector(Collector):
    """Per-queue gauges and totals from the monitor's latest snapshot (taken before each
    scrape, since collectors cannot await)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.snapshot = Snapshot()
        self.delivery_counts: dict[str, dict[str, int]] = {}
        self.tables: list[TableHealth] = []
        self.hold: SnapshotHold | None = None

    def collect(self) -> Iterable[Any]:
        labels = ["queue"]
        scope = (f" Per queue for at most {QUEUE_SERIES} queues, the deepest first, then the "
                 "others by name; conveyor_queues_messages sums every queue.")
        gauges = {
            "visible": GaugeMetricFamily("conveyor_queue_visible_messages",
                                         "Messages ready to be received." + scope,
                                         labels=labels),
            "in_flight": GaugeMetricFamily("conveyor_queue_in_flight_messages",
                                           "Messages leased to a consumer." + scope,
                                           labels=labels),
            "delayed": GaugeMetricFamily("conveyor_queue_delayed_messages",
                                         "Messages not yet visible." + scope, labels=labels),
            "dead_letters": GaugeMetricFamily(
                "conveyor_queue_dead_letter_messages",
                "Messages from this queue now in its dead-letter queue." + scope,
                labels=labels),
            "age": GaugeMetricFamily("conveyor_queue_oldest_message_age_seconds",
                                     "Age of the oldest message (0 when empty)." + scope,
                                     labels=labels),
        }
        dead = CounterMetricFamily(
            "conveyor_messages_dead_lettered", "Messages seen moving to a dead-letter queue "
            "(by this process's sampler)." + scope, labels=labels)
        points = self.snapshot.points
        for name in self.shown():
            p = points.get(name)
            gauges["visible"].add_metric([name], p.visible if p else 0)
            gauges["in_flight"].add_metric([name], p.in_flight if p else 0)
            gauges["delayed"].add_metric([name], p.delayed if p else 0)
            gauges["dead_letters"].add_metric([name], p.dead_letters if p else 0)
            gauges["age"].add_metric([name], (p.oldest_age_seconds or 0.0) if p else 0.0)
            dead.add_metric([name], self.monitor.dead_lettered.get(name, 0))
        yield from gauges.values()
        yield dead
        yield GaugeMetricFamily("conveyor_queues", "Queues (of the server's region).",
                                value=len(self.snapshot.queues))
        total = GaugeMetricFamily("conveyor_queues_messages", "Messages in every queue by "
                                  "state (visible, in_flight, delayed).", labels=["state"])
        for state in ("visible", "in_flight", "delayed"):
            total.add_metric([state], sum(getattr(p, state) for p in points.values()))
        yield total
        waiting = GaugeMetricFamily(
            "conveyor_waiting_receives", "Receives (HTTP, SQS, WebSocket) waiting in a long "
            "poll now, in the process that answered this scrape.")
        waiting.add_metric([], self.monitor.broker.waiting_receives)
        yield waiting
        if self.delivery_counts:
            sent = GaugeMetricFamily("conveyor_deliveries", "Notification deliveries in the "
                                     "ledger by channel and status.",
                                     labels=["channel", "status"])
            for channel, statuses in sorted(self.delivery_counts.items()):
                for status, count in sorted(statuses.items()):
                    sent.add_metric([channel, status], count)
            yield sent
        yield from table_metrics(self.tables)
        yield hold_metric(self.hold)


    def shown(self) -> list[str]:
        """The queues given their own series: the deepest first (those holding messages),
        then the others by name, `QUEUE_SERIES` at most."""
        points = self.snapshot.points
        deepest = heapq.nlargest(QUEUE_SERIES, (p for p in points.items() if p[1].busy),
                                 key=lambda item: (item[1].visible + item[1].in_flight
                                                   + item[1].delayed, item[1].dead_letters))
        shown = [name for name, _ in deepest]
        if len(shown) < QUEUE_SERIES:
            taken = set(shown)
            shown += heapq.nsmallest(QUEUE_SERIES - len(shown),
                                     (n for n in self.snapshot.queues if n not in taken))
        return shown


class Metrics:
    """One app's Prometheus registry: HTTP, message and queue metrics.

    Add more with `metrics.registry.register(collector)` or a `prometheus_client` metric
    created with `registry=metrics.registry`; `before_scrape` callbacks run (awaited) before
    each scrape, to read whatever the collectors show.
    """

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.registry = CollectorRegistry(auto_describe=True)
        self.before_scrape: list[Callable[[], Any]] = []
        self.requests = Counter("conveyor_http_requests", "HTTP requests by route template.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("conveyor_http_request_duration_seconds",
                                 "HTTP request latency by route template.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.messages = Counter("conveyor_messages", "Messages by queue and event "
                                "(sent, received, deleted) through this process.",
                                ["queue", "event"], registry=self.registry)
        self.queues = QueueCollector(monitor)
        self.registry.register(self.queues)
        self.jobs = JobSystemCollector()
        self.registry.register(self.jobs)
        monitor.counters.listeners.append(self._count_message)

    def _count_message(self, event: str, queue: str, count: int) -> None:
        self.messages.labels(queue, event).inc(count)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request (a `RequestLog` observer)."""
        if route == "/metrics":
            return  # scrapes would dominate the figures
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    async def render(self) -> bytes:
        """The text exposition, with queue figures fresh to the monitor's interval."""
        self.queues.snapshot = await self.monitor.current()
        await self.jobs.refresh(self.monitor.broker)
        self.queues.delivery_counts = await delivery_counts(self.monitor.broker)
        self.queues.tables = await table_health(self.monitor.broker)
        self.queues.hold = await snapshot_hold(self.monitor.broker)
        for callback in self.before_scrape:
            result = callback()
            if hasattr(result, "__await__"):
                await result
        return generate_latest(self.registry)


def table_metrics(tables: list[TableHealth]) -> Iterable[Any]:
    """Gauges of how big conveyor's tables are and how much is dead weight."""
    if not tables:
        return
    labels = ["table"]
    size = GaugeMetricFamily("conveyor_table_bytes", "Bytes of a table with its indexes "
                             "(SQLite: the database file and its WAL).", labels=labels)
    live = GaugeMetricFamily("conveyor_table_live_tuples", "Live rows (PostgreSQL "
                             "statistics).", labels=labels)
    dead = GaugeMetricFamily("conveyor_table_dead_tuples", "Rows deleted or updated but "
                             "not yet reclaimed (PostgreSQL statistics).", labels=labels)
    ratio = GaugeMetricFamily("conveyor_table_dead_ratio", "Dead rows over all rows "
                              "(0 when empty).", labels=labels)
    free = GaugeMetricFamily("conveyor_table_free_bytes", "Bytes of free pages kept for "
                             "reuse (SQLite).", labels=labels)
    for t in tables:
        size.add_metric([t.table], t.bytes)
        if t.live_rows is None:
            free.add_metric([t.table], t.free_bytes)
            continue
        live.add_metric([t.table], t.live_rows)
        dead.add_metric([t.table], t.dead_rows)
        ratio.add_metric([t.table], t.dead_rows / max(1, t.live_rows + t.dead_rows))
    yield from (size, live, dead, ratio, free)


def hold_metric(hold: SnapshotHold | None) -> GaugeMetricFamily:
    """How long the oldest open snapshot has held back cleanup (0: none)."""
    gauge = GaugeMetricFamily(
        "conveyor_oldest_snapshot_seconds",
        "How long the oldest open snapshot has kept dead weight from being reclaimed "
        "(PostgreSQL: a transaction holding this database's xmin horizon; SQLite: a reader "
        "keeping the WAL from being checkpointed, timed from when this process first saw "
        "it); 0 when none. The dashboard's Storage section names the holder.")
    gauge.add_metric([], (hold.seconds or 0.0) if hold else 0.0)
    return gauge


async def snapshot_hold(broker: Broker) -> SnapshotHold | None:
    """The storage's oldest snapshot holding back cleanup, or None (also when unknown)."""
    try:
        return await broker.snapshot_hold()
    except Exception:  # figures are optional; the scrape must not fail
        log.debug("snapshot hold unavailable", exc_info=True)
        return None


async def table_health(broker: Broker) -> list[TableHealth]:
    """The storage's table figures, or [] when they cannot be read."""
    try:
        return await broker.table_health()
    except Exception:  # figures are optional; the scrape must not fail
        log.debug("table figures unavailable", exc_info=True)
        return []


def metrics_of(request: Request) -> Metrics:
    """The app's `Metrics` (set by `install`)."""
    metrics: Metrics = request.app.state.metrics
    return metrics


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "Prometheus text format."}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics: queues, messages, HTTP requests, jobs, workers and tasks."""
    body = await metrics_of(request).render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, *, interval: float | None = None) -> None:
    """Give the app its monitor, metrics and request log, and sample during its lifespan."""
    broker: Broker = app.state.broker
    monitor = Monitor(broker) if interval is None else Monitor(broker, interval=interval)
    app.state.monitor = monitor
    app.state.metrics = Metrics(monitor)
    app.add_middleware(RequestLog, observers=[app.state.metrics.observe_request])
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(target: Any) -> AsyncIterator[Any]:
        async with inner(target) as state:
            monitor.start()
            try:
                yield state
            finally:
                await monitor.stop()

    app.router.lifespan_context = lifespan
