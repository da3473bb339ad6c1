"""The demo run while it runs: from the delivery workers' start to the figures of the
report. The notifications are enqueued in batches, every channel's interleaved at its share
of the run (or, in the recipient run, the people are notified in one bulk call), while the
workers deliver them and live progress bars show both; the crash run kills workers on
schedule and the recipient run takes its marks; at the end the workers' final reports are
gathered into the `Report` (`conveyor.demo.run` starts and ends everything around it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conveyor.demo.cpu import ServerCpu
from conveyor.demo.crashes import Crashes, WorkerPool
from conveyor.demo.ending import Interrupted, cleaning, interrupted
from conveyor.demo.mobile_peers import apns_token, fcm_token
from conveyor.demo.people import (
    PeopleRun,
    deliverable,
    notify_everyone,
    plain_build_seconds,
)
from conveyor.demo.report import LABELS, Report
from conveyor.demo.workload import TEMPLATES, data, email_address
from conveyor.notify import Apns, Email, Fcm, Notification, WebPush

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["drive"]

ENQUEUE_BATCH = 5000

PROGRESS_EVERY_ENV = "CONVEYOR_DEMO_PROGRESS_EVERY"
"""Seconds between the plain progress lines printed when stdout is no terminal (default
10; the tests set less)."""


async def drive(show_progress: bool, url: str, counts: dict[str, int],
                offsets: dict[str, int], ports: dict[str, int],
                sub_keys: list[dict[str, Any]], pool: WorkerPool, stop: Any,
                crashes: Crashes | None, started: float, out: Callable[[str], None],
                people: PeopleRun | None = None) -> Report:
    """Enqueue the run's notifications (or notify the people) while the started workers
    deliver them, until every one is settled; then stop the workers and gather their final
    reports into the run's `Report`."""
    from conveyor.connect import open_broker, sqlite_write_lock
    from conveyor.notify import Notifier
    from conveyor.notify.channel import Channel

    total = sum(counts.values())
    report = Report(messages=total, counts=dict(counts), crashes=crashes)
    if people is not None:  # the opted-out are never sent
        total -= sum(1 for c, n in counts.items()
                     for i in range(offsets[c], offsets[c] + n) if not deliverable(i))
    broker = open_broker(url, sweep_interval=None)
    await broker.start()
    server = ServerCpu(url)
    sampled = 0.0
    stub = {name: Channel() for name in counts}
    notifier = Notifier(broker, channels=stub, templates=TEMPLATES)
    latest: dict[int, dict[str, Any]] = {}
    finals: dict[int, dict[str, Any]] = {}
    enqueued = 0
    enqueued_by: dict[str, int] = {}  # the plain run's, by channel
    first_delivery: float | None = None
    progress = _Progress(total, show_progress, out)

    def drain() -> None:
        for item in pool.reports():
            latest[item["worker"]] = item
            if item["final"]:
                finals[item["worker"]] = item

    def delivered() -> tuple[int, int]:
        return (sum(r["sent"] for r in latest.values()),
                sum(r["failed"] for r in latest.values()))

    build = [0.0]

    async def enqueue() -> None:
        nonlocal enqueued
        # batches of every channel interleaved, each channel at its own share of the run
        plan = [(c, i) for c, n in counts.items()
                for i in range(offsets[c], offsets[c] + n, ENQUEUE_BATCH)]
        plan.sort(key=lambda p: (p[1] - offsets[p[0]]) / counts[p[0]])
        for channel, start in plan:
            since = time.perf_counter()
            end = min(start + ENQUEUE_BATCH, offsets[channel] + counts[channel])
            notes = [_notification(channel, i, ports, sub_keys) for i in range(start, end)]
            by_channel = notifier.items(notes)
            build[0] += time.perf_counter() - since
            for ch, items in by_channel.items():
                await notifier.enqueue_items(ch, items)
            enqueued += end - start
            enqueued_by[channel] = enqueued_by.get(channel, 0) + end - start
            progress.update(enqueued, *delivered())
            drain()

    async def notify_people() -> None:
        nonlocal enqueued
        assert people is not None
        spans = [(c, offsets[c], n) for c, n in counts.items()]
        people.plain_build_us = plain_build_seconds(notifier, spans) * 1e6

        def moved(n: int) -> None:
            nonlocal enqueued
            enqueued = n
            progress.update(enqueued, *delivered())
            drain()
        await notify_everyone(notifier, people, moved)

    producer = asyncio.create_task(enqueue() if people is None else notify_people())
    try:
        while True:
            await asyncio.sleep(0.2)
            drain()
            if time.monotonic() - sampled >= 1.0:
                await server.sample()
                sampled = time.monotonic()
            sent, failed = delivered()
            if first_delivery is None and sent:
                first_delivery = time.perf_counter()
            progress.update(enqueued, sent, failed)
            if progress.line_due():
                by_group: dict[tuple[str, ...], int] = {}
                for worker, item in latest.items():
                    group = pool.group_of[worker]
                    by_group[group] = by_group.get(group, 0) + item["sent"]
                progress.line(enqueued, sent, failed, counts, enqueued_by, by_group)
            if (signum := interrupted()) is not None:  # in case asyncio dropped it
                raise Interrupted(signum)
            if producer.done():
                producer.result()
                if report.enqueue_seconds == 0:
                    report.enqueue_seconds = time.perf_counter() - started
            if people is not None:
                await _people_tick(broker, people, started, sent, producer.done())
            if crashes is None and sent + failed >= total and producer.done():
                break
            if crashes is not None and await _crash_tick(broker, pool, crashes, total,
                                                         producer.done()):
                break
            if not any(p.is_alive() for p in pool.live):
                raise RuntimeError("every delivery worker exited early")
        report.deliver_seconds = time.perf_counter() - started
        if people is not None:
            people.all_seconds = report.deliver_seconds
        report.ledger = await broker.ledger.counts()
        if crashes is not None:
            crashes.kills = pool.kills
            crashes.resent = await broker.ledger.resent()
        report.enqueue_waits = {"build": build[0], **notifier.waits}
    finally:
        with cleaning():
            progress.close()
            stop.set()
            producer.cancel()
            deadline = time.monotonic() + 20
            while len(finals) < len(pool.live) and time.monotonic() < deadline and \
                    not interrupted():  # stopped by a signal: no reports to wait for
                await asyncio.sleep(0.05)
                drain()
            await server.sample()
            await server.close()
            await broker.close()
    report.server_cpu, report.server_waited = server.cpu, server.waited
    report.wall_seconds = time.perf_counter() - started
    lat = array("q")
    for f in finals.values():
        chunk = array("q")
        chunk.frombytes(f["latencies"])
        lat.extend(chunk)
    report.latencies = sorted(lat)
    report.sent, report.failed = delivered()
    if crashes is not None:  # killed workers' last reports count sends that were redone
        report.sent = sum(c["sent"] for c in report.ledger.values())
        report.failed = sum(c["failed"] + c["unknown"] for c in report.ledger.values())
    report.worker_cpu = sum(f["cpu"] for f in finals.values())
    report.render_cpu = sum(f["render_cpu"] for f in finals.values())
    report.broker_cpu = sum(f["broker_cpu"] for f in finals.values())
    report.run_queue = sum(f.get("run_queue", 0.0) for f in finals.values())
    report.write_lock["producer"] = sqlite_write_lock()
    report.write_lock["workers"] = {k: sum(f.get("write_lock", {}).get(k, 0.0)
                                           for f in finals.values())
                                    for k in report.write_lock["producer"]}
    for f in finals.values():
        for stage, seconds in f.get("waits", {}).items():
            report.waits[stage] = report.waits.get(stage, 0.0) + seconds
    report.pipelined = any(f.get("smtp_pipelined") for f in finals.values())
    return report


async def _people_tick(broker: Broker, people: PeopleRun, started: float, sent: int,
                       notified: bool) -> None:
    """The recipient run's marks: when the plain group is all sent (only it can be, before
    the window ends), and the held count a second before the window ends."""
    now_ms = time.time() * 1000
    if people.rest_seconds is None and notified and sent >= people.counts.queued and \
            now_ms < people.release_ms:
        people.rest_seconds = time.perf_counter() - started
    if people.held_before_release is None and notified and \
            people.release_ms - 1500 <= now_ms < people.release_ms:
        counts = await broker.ledger.counts()
        people.held_before_release = sum(c["held"] for c in counts.values())


async def _crash_tick(broker: Broker, pool: WorkerPool, crashes: Crashes, total: int,
                      enqueued: bool) -> bool:
    """Kill the oldest delivering worker when it is time; True once the ledger has every
    notification settled (the workers' own counts include sends a killed worker never
    recorded)."""
    now = time.monotonic()
    pool.restart_exited()
    if now >= crashes.next_kill and pool.oldest_age() >= crashes.every and pool.delivering:
        pool.kill_oldest()
        crashes.next_kill = now + crashes.every
    if not enqueued or now < crashes.next_count:
        return False
    crashes.next_count = now + 1.0
    counts = await broker.ledger.counts()
    return sum(c["sent"] + c["failed"] + c["unknown"] for c in counts.values()) >= total


class _Progress:
    """Live bars (rich) when stdout is a terminal; else a plain line every
    `PROGRESS_EVERY_ENV` seconds (10), so that a log shows the run alive; nothing when
    not `enabled` (`--no-progress`)."""

    def __init__(self, total: int, enabled: bool, out: Callable[[str], None]) -> None:
        self.bars: Any = None
        self.total, self.out = total, out
        self.started = time.monotonic()
        self.every = float(os.environ.get(PROGRESS_EVERY_ENV) or 10) \
            if enabled and not sys.stdout.isatty() else 0.0
        self.next_line = self.started + self.every
        if not enabled or self.every:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        del TransferSpeedColumn
        self.bars = Progress(TextColumn("{task.description:>10}"), BarColumn(),
                             MofNCompleteColumn(), TaskProgressColumn(),
                             TextColumn("{task.fields[rate]:>9} msg/s"),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                             refresh_per_second=5)
        self.enq = self.bars.add_task("enqueued", total=total, rate="")
        self.out = self.bars.add_task("delivered", total=total, rate="")
        self.bad = self.bars.add_task("failed", total=total, rate="")
        self.bars.start()

    def update(self, enqueued: int, sent: int, failed: int) -> None:
        if self.bars is None:
            return
        for task, value in ((self.enq, enqueued), (self.out, sent), (self.bad, failed)):
            speed = self.bars.tasks[task].speed
            self.bars.update(task, completed=value,
                             rate=f"{speed:,.0f}" if speed else "")

    def close(self) -> None:
        if self.bars is not None:
            self.bars.stop()

    def line_due(self) -> bool:
        """Time for a plain line."""
        return bool(self.every) and time.monotonic() >= self.next_line

    def line(self, enqueued: int, sent: int, failed: int, counts: dict[str, int],
             enqueued_by: dict[str, int], sent_by: dict[tuple[str, ...], int]) -> None:
        """A plain line: enqueued of the run (by channel, `enqueued_by`, when known), then
        delivered (`total`: those to deliver, without the recipient run's opted-out) by
        group of channels sharing workers, as the workers count them. Nothing is asked of
        the database: a count by channel there took 7 ms per 20,000 notifications of the
        producer's database thread (some 0.35 s at a million, every line)."""
        now = time.monotonic()
        self.next_line = max(self.next_line + self.every, now + self.every / 2)
        text = f"progress {now - self.started:,.0f} s: enqueued {enqueued:,} of " \
               f"{sum(counts.values()):,}"
        if enqueued_by:
            text += " (" + ", ".join(f"{LABELS.get(c, c)} {enqueued_by.get(c, 0):,} of {n:,}"
                                     for c, n in counts.items()) + ")"
        text += f"; delivered {sent:,} of {self.total:,}"
        if sent_by:
            order = list(LABELS)
            text += " (" + "; ".join(
                ", ".join(LABELS.get(c, c) for c in group) + f" {n:,}"
                for group, n in sorted(sent_by.items(), key=lambda g: order.index(g[0][0])))
            text += ")"
        self.out(f"{text}, failed {failed:,}")


def _notification(channel: str, i: int, ports: dict[str, int],
                  sub_keys: list[dict[str, Any]]) -> Notification:
    """The demo's notification i on a channel."""
    if channel == "email":
        return Email(to=email_address(i), template="demo", data=data(i))
    if channel == "push":
        return WebPush(subscription={"endpoint": f"http://127.0.0.1:{ports['push']}/push/{i}",
                                     "keys": sub_keys[i % len(sub_keys)]},
                       template="demo", data=data(i))
    if channel == "fcm":
        return Fcm(token=fcm_token(i), template="demo", data=data(i), priority="high")
    return Apns(token=apns_token(i), template="demo", data=data(i))
