"""One demo delivery worker process: a `Deliverer` on the demo's database and peers,
reporting its counters to the parent several times a second."""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
import time
from typing import Any

import psutil  # type: ignore[import-untyped]

from conveyor.demo.cpu import run_queue_wait
from conveyor.notify.delivery_options import DeliveryOptions


def _thread_cpu(prefix: str) -> float:
    """CPU seconds of this process's threads whose names start with `prefix`."""
    ids = {t.native_id for t in threading.enumerate() if t.name.startswith(prefix)}
    return float(sum(t.user_time + t.system_time
                     for t in psutil.Process().threads() if t.id in ids))


def worker_main(index: int, url: str, channels: dict[str, dict[str, Any]],
                options: DeliveryOptions, reports: Any, stop: Any) -> None:
    """Process entry point (spawned); dies with the demo, even by `kill -9`."""
    import multiprocessing

    from conveyor.lifeline import die_with

    parent = multiprocessing.parent_process()  # the pid at spawn, even if it died since
    die_with(parent.pid if parent is not None and parent.pid else os.getppid())
    async def main() -> None:
        from conveyor.collector import tune_collector
        from conveyor.connect import open_broker, sqlite_write_lock
        from conveyor.demo.workload import TEMPLATES
        from conveyor.notify import (
            ApnsChannel,
            FcmChannel,
            Notifier,
            SmtpChannel,
            WebPushChannel,
        )

        made: dict[str, Any] = {}
        if "email" in channels:
            made["email"] = SmtpChannel(**channels["email"])
        if "push" in channels:
            made["push"] = WebPushChannel(**channels["push"])
        for kind, cls in (("fcm", FcmChannel), ("apns", ApnsChannel)):
            if kind in channels:  # the peers' self-signed certificate, trusted here
                settings = dict(channels[kind])
                context = ssl.create_default_context(cafile=settings.pop("cafile"))
                made[kind] = cls(**settings, ssl_context=context)
        broker = open_broker(url, sweep_interval=None)
        await broker.start()
        notifier = Notifier(broker, channels=made, templates=TEMPLATES)
        deliverer = notifier.deliverer(options)
        tune_collector()
        runner = asyncio.create_task(deliverer.run())
        stats = deliverer.stats

        def snapshot(final: bool) -> dict[str, Any]:
            times = os.times()
            report: dict[str, Any] = {
                "worker": index, "sent": stats.sent, "failed": stats.failed,
                "retried": stats.retried, "skipped": stats.skipped,
                "cpu": times.user + times.system, "render_cpu": stats.render_cpu,
                "broker_cpu": _thread_cpu("conveyor-sqlite"), "final": final,
                "run_queue": run_queue_wait(), "write_lock": sqlite_write_lock(),
                "waits": dict(stats.waits)}
            if final:
                report["latencies"] = stats.latencies_ms.tobytes()
                report["smtp_pipelined"] = getattr(made.get("email"), "pipelined", None)
            return report

        while not stop.is_set() and not runner.done():
            reports.put(snapshot(False))
            await asyncio.sleep(0.25)
        deliverer.stop()
        # Idle lanes wait in a long poll (up to wait_seconds): answer them now. The
        # broker is this process's alone, and a poll woken so still claims once.
        broker.end_long_polls()
        await runner
        final = snapshot(True)  # before the storage's thread goes with the broker
        await broker.close()
        reports.put(final)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    time.sleep(0.05)
