"""The demo run: peers up, N notifications enqueued, workers delivering, a report.

Everything stays on loopback and stops by itself: peers and workers are child processes
ended when the run ends (or fails), and the SQLite file is a fresh temporary one unless
`--database` names another.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing as mp
import os
import shutil
import socket
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil  # type: ignore[import-untyped]

from conveyor.demo import peers
from conveyor.demo.cpu import ServerCpu, run_queue_wait
from conveyor.demo.crashes import CRASH_VISIBILITY, Crashes, WorkerPool
from conveyor.demo.mobile_peers import apns_token, fcm_token
from conveyor.demo.people import (
    PeopleRun,
    deliverable,
    import_people,
    notify_everyone,
    plain_build_seconds,
)
from conveyor.demo.report import Report, render_report
from conveyor.demo.worker import worker_main
from conveyor.demo.workload import TEMPLATES, data, email_address
from conveyor.notify import Apns, Email, Fcm, Notification, WebPush
from conveyor.notify.delivery_options import DeliveryOptions

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["DemoConfig", "run_demo"]

SUBSCRIBER_KEYS = 16
ENQUEUE_BATCH = 5000


CHANNELS = ("email", "push", "fcm", "apns")
"""The demo's channels in index order: email, Web Push, FCM, APNs."""

CHANNEL_GROUPS = (("email",), ("push", "fcm", "apns"))
"""Channels that share worker processes. Email gets processes of its own: its rate is bound
by round trips (one per message and SMTP connection: nothing may follow DATA before the
server's 354), and in one event loop with the channels that spend CPU on every message
(Web Push encryption, HTTP/2 framing and TLS) each of those round trips waited behind their
work: email fell behind and ran alone at the end with the cores partly idle. In processes
of its own, the kernel interleaves its short wake-ups with the others' longer runs, as in a
deployment with email workers beside push workers."""

DEFAULT_MIX = {"email": 0.6, "push": 0.15, "fcm": 0.15, "apns": 0.1}
"""Email is still most of what products send; the rest goes to phones more than to
browsers, and to Android (FCM) more than to iPhones (APNs)."""


@dataclass
class DemoConfig:
    """What `conveyor demo` runs (`mix`: shares by channel: email, push, fcm, apns)."""

    messages: int = 1_000_000
    database: str | None = None
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    cost_per_hour: float = 0.05
    workers: int = 0  # 0: default_workers (shared by CHANNEL_GROUPS, at least one each)
    verify_every: int = 0  # 0: every push message up to 20,000, else 1 in 20
    progress: bool = True
    use_smtp_sink: bool = True
    kill_workers_every: float = 0.0  # 0: never; else kill -9 a delivery worker this often
    recipients: int = 0
    """0: `messages` plain notifications; else the recipient run (`conveyor.demo.people`):
    this many people imported and notified in one bulk call."""
    hold_seconds: float | None = None
    """The recipient run's quiet hours end at least this long after the import (None:
    60 s + 1 s per 10,000 people)."""


def split(messages: int, mix: dict[str, float]) -> dict[str, int]:
    """How many notifications each channel gets (the last one takes the rounding)."""
    total = sum(mix.get(c, 0.0) for c in CHANNELS) or 1.0
    shares = [(c, mix.get(c, 0.0)) for c in CHANNELS if mix.get(c, 0.0) > 0]
    counts: dict[str, int] = {}
    for channel, share in shares[:-1]:
        counts[channel] = round(messages * share / total)
    if shares:
        counts[shares[-1][0]] = messages - sum(counts.values())
    return {c: n for c, n in counts.items() if n > 0}


def default_workers(database: str | None) -> int:
    """One delivery worker process per core on SQLite, two on PostgreSQL. On PostgreSQL a
    worker waits for the server on every statement, so more processes than cores keep the
    cores busy (the million: 204 s at 1.91 cores busy with four on two cores, 221 s at 1.79
    with two); on SQLite the writers share the file's one lock, and extra processes only
    contended for it (two: 215 and 221 s, 390 and 401 CPU-s; four: 224 s, 425 CPU-s)."""
    from conveyor.connect import is_postgres_url

    cores = os.cpu_count() or 2
    return cores * 2 if is_postgres_url(database) else cores


def share_workers(workers: int, counts: dict[str, int]) -> list[tuple[int, tuple[str, ...]]]:
    """(processes, channels) for each group of `CHANNEL_GROUPS` that has notifications:
    `workers` shared evenly, the remainder to the later groups, at least one each."""
    groups = [g for g in (tuple(c for c in group if c in counts) for group in CHANNEL_GROUPS)
              if g]
    base, extra = divmod(workers, len(groups) or 1)
    return [(max(1, base + (k >= len(groups) - extra)), g) for k, g in enumerate(groups)]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _subscriber_keys() -> tuple[list[tuple[bytes, str, bytes]], list[dict[str, Any]]]:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    from conveyor.demo.loopback import make_subscriber

    subs = [make_subscriber() for _ in range(SUBSCRIBER_KEYS)]
    keys = [(s.private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()),
             s.p256dh, s.auth) for s in subs]
    return keys, [s.subscription("x")["keys"] for s in subs]


def _vapid_pem() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def run_demo(config: DemoConfig, out: Callable[[str], None] = print) -> Report:
    """Run the demo and return its report (also printed through `out`)."""
    people = PeopleRun(config.recipients) if config.recipients else None
    mix = config.mix if people is None else {**config.mix, "push": 0.0}
    counts = split(config.recipients or config.messages, mix)
    offsets, at = {}, 0
    for channel in CHANNELS:  # each channel's notifications get their own index range
        offsets[channel] = at
        at += counts.get(channel, 0)
    groups = share_workers(config.workers or default_workers(config.database), counts)
    n_push = counts.get("push", 0)
    verify_every = config.verify_every or (1 if n_push <= 20_000 else 20)
    folder = Path(tempfile.mkdtemp(prefix="conveyor-demo-"))
    url = config.database or f"sqlite:///{folder / 'demo.db'}"
    sinks: dict[str, Any] = {}
    pool: WorkerPool | None = None
    try:
        ports = {c: _port() for c in counts}
        channels: dict[str, dict[str, Any]] = {}
        sub_keys: list[dict[str, Any]] = []
        binary = peers.find_smtp_sink() if config.use_smtp_sink else None
        if "email" in counts:
            sinks["email"] = (peers.PostfixSink(binary, ports["email"], folder,
                                                counts["email"]) if binary
                              else peers.AiosmtpdSink(ports["email"]))
            channels["email"] = {"host": "127.0.0.1", "port": ports["email"],
                                 "sender": "Demo <demo@conveyor.example>",
                                 "pool_size": 8 if binary else 20}
        if "push" in counts:
            keys, sub_keys = _subscriber_keys()
            sinks["push"] = peers.PushSink(ports["push"], keys, verify_every)
            channels["push"] = {"vapid_private_key": _vapid_pem(),
                                "vapid_claims": {"sub": "mailto:demo@conveyor.example"},
                                "concurrency": 64}
        if "fcm" in counts or "apns" in counts:
            channels.update(_mobile(folder, counts, ports, sinks))
        kill_every = config.kill_workers_every
        options = DeliveryOptions(lanes=3, envelopes=2, wait_seconds=1,
                                  visibility_timeout=CRASH_VISIBILITY if kill_every else 300)
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        pool = WorkerPool(ctx, worker_main, (url, channels, options, stop))
        crashes = Crashes(kill_every, options.in_flight) if kill_every else None
        if people is not None:
            hold = config.hold_seconds
            asyncio.run(_import(url, counts, offsets, people, out,
                                60 + config.recipients / 10_000 if hold is None else hold))
        started = time.perf_counter()
        cpu_before = _cpu_of([os.getpid()])
        sinks_before = {c: _cpu_of([s.pid]) for c, s in sinks.items()}  # their start-up
        for size, group in groups:
            for _ in range(size):
                pool.start(group)
        report = asyncio.run(_drive(config, url, counts, offsets, ports, sub_keys,
                                    pool, stop, crashes, started, out, people))
        report.sinks = {c: sink.name for c, sink in sinks.items()}
        report.peer_cpu = {c: _cpu_of([s.pid]) - sinks_before[c] for c, s in sinks.items()}
        report.peer_cpu["sink"] = sum(report.peer_cpu.values())
        report.run_queue += run_queue_wait() + sum(
            run_queue_wait(s.pid) for s in sinks.values() if s.pid is not None)
        report.load = os.getloadavg()
        keep = None if people is None else deliverable
        report.check({c: (_expected(c, offsets[c], n, keep), sinks[c].results())
                      for c, n in counts.items()})
        report.producer_cpu = _cpu_of([os.getpid()]) - cpu_before
        report.workers = sum(size for size, _ in groups)
        report.groups = groups
        report.database = "SQLite (embedded, a fresh file)" if config.database is None \
            else config.database.split("://", 1)[0]
        report.cost_per_hour = config.cost_per_hour
        out(render_report(report) + ("" if people is None else
                                     "\n" + "\n".join(people.lines())))
        return report
    finally:
        for proc in pool.live if pool is not None else []:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        for sink in sinks.values():
            sink.close()
        # The sink's dump and the SQLite file of a million run take hundreds of MB.
        shutil.rmtree(folder, ignore_errors=True)


def _mobile(folder: Path, counts: dict[str, int], ports: dict[str, int],
            sinks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Start the FCM/APNs peers with fresh credentials; the channels' settings."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    from conveyor.demo.tls import self_signed

    cert, key = self_signed(folder)
    channels: dict[str, dict[str, Any]] = {}
    for kind in ("fcm", "apns"):
        if kind not in counts:
            continue
        secret: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048) \
            if kind == "fcm" else ec.generate_private_key(ec.SECP256R1())
        pem = secret.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        public = secret.public_key().public_bytes(Encoding.PEM,
                                                  PublicFormat.SubjectPublicKeyInfo)
        port = ports[kind]
        sinks[kind] = peers.MobileSink(kind, port, cert, key, public)
        if kind == "fcm":
            channels[kind] = {"credentials": {
                "type": "service_account", "project_id": peers.FCM_PROJECT,
                "private_key_id": "demo", "private_key": pem.decode(),
                "client_email": peers.FCM_EMAIL,
                "token_uri": f"https://127.0.0.1:{port}/token"},
                "url": f"https://127.0.0.1:{port}", "cafile": str(cert)}
        else:
            channels[kind] = {"key": pem, "key_id": peers.APNS_KEY_ID,
                              "team_id": peers.APNS_TEAM, "topic": peers.APNS_TOPIC,
                              "url": f"https://127.0.0.1:{port}", "cafile": str(cert)}
    return channels


def _expected(channel: str, offset: int, n: int,
              keep: Callable[[int], bool] | None = None) -> set[str]:
    """What a channel's sink should have received once each."""
    makers: dict[str, Callable[[int], str]] = {
        "email": email_address, "push": str, "fcm": fcm_token, "apns": apns_token}
    make = makers[channel]
    return {make(i) for i in range(offset, offset + n) if keep is None or keep(i)}


async def _import(url: str, counts: dict[str, int], offsets: dict[str, int],
                  people: PeopleRun, out: Callable[[str], None], hold: float) -> None:
    """The recipient run's import, before the clock of the run starts."""
    from conveyor.connect import open_broker

    async with open_broker(url, sweep_interval=None) as broker:
        await import_people(broker, [(c, offsets[c], n) for c, n in counts.items()],
                            people, hold, out)


def _cpu_of(pids: list[int | None]) -> float:
    total = 0.0
    for pid in pids:
        if pid is None:
            continue
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


async def _drive(config: DemoConfig, url: str, counts: dict[str, int],
                 offsets: dict[str, int], ports: dict[str, int],
                 sub_keys: list[dict[str, Any]], pool: WorkerPool, stop: Any,
                 crashes: Crashes | None, started: float, out: Callable[[str], None],
                 people: PeopleRun | None = None) -> Report:
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
    first_delivery: float | None = None
    progress = _Progress(total, config.progress)

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
        progress.close()
        stop.set()
        producer.cancel()
        deadline = time.monotonic() + 20
        while len(finals) < len(pool.live) and time.monotonic() < deadline:
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
    """Live bars (rich) on a terminal; nothing otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bars: Any = None
        if not enabled:
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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
