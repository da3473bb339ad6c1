"""The demo run: peers up, N notifications enqueued, workers delivering, a report.

Everything stays on loopback and stops by itself: peers and workers are child processes
ended when the run ends (or fails), and the SQLite file is a fresh temporary one unless
`--database` names another.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from conveyor.demo import peers
from conveyor.demo.cpu import run_queue_wait
from conveyor.demo.crashes import CRASH_VISIBILITY, Crashes, WorkerPool
from conveyor.demo.drive import drive
from conveyor.demo.ending import Janitor, cleaning, interrupted, stop_on_signals
from conveyor.demo.mobile_peers import apns_token, fcm_token
from conveyor.demo.people import PeopleRun, deliverable, import_people
from conveyor.demo.report import Report, render_report
from conveyor.demo.worker import worker_main
from conveyor.demo.workload import email_address
from conveyor.notify.delivery_options import DeliveryOptions

__all__ = ["DemoConfig", "run_demo"]

SUBSCRIBER_KEYS = 16


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


def _say(text: str) -> None:
    print(text, flush=True)  # at once, also into a file or a pipe


def run_demo(config: DemoConfig, out: Callable[[str], None] = _say) -> Report:
    """Run the demo and return its report (also printed through `out`).

    SIGTERM, or a SIGINT, stops it early with `ending.Interrupted` once its children are
    stopped and its temporary files removed; its children die with it even by `kill -9`
    (`conveyor.demo.ending`)."""
    with stop_on_signals():
        janitor = Janitor()
        try:
            return _run(config, out, janitor)
        finally:
            janitor.close()


def _run(config: DemoConfig, out: Callable[[str], None], janitor: Janitor) -> Report:
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
    janitor.remove_at_end(folder)
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
                                                counts["email"], janitor)
                              if binary
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
        # (drive starts replacement workers on this thread too: see `conveyor.demo.ending`
        # on the parent-death signal)
        report = asyncio.run(drive(config.progress, url, counts, offsets, ports, sub_keys,
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
        with cleaning():
            _stop(pool, sinks)
            # The sink's dump and the SQLite file of a million run take hundreds of MB.
            shutil.rmtree(folder, ignore_errors=True)


def _stop(pool: WorkerPool | None, sinks: dict[str, Any]) -> None:
    """End the workers and the peers: at once when stopped by a signal (no final reports
    to wait for), else once they are done."""
    for proc in pool.live if pool is not None else []:
        if interrupted():
            proc.kill()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    for sink in sinks.values():
        sink.close(0.0 if interrupted() else 5.0)


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

