"""A notify worker whose SMTP server (or FCM, APNs) goes away and comes back says so: one
WARNING naming the server and the error, one INFO line when it answers again (outside
probe: deliveries failed and were retried in silence). Delivery itself is as before:
retried, then sent."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from conveyor.broker.broker import Broker
from conveyor.clock import ManualClock
from conveyor.demo.loopback import SmtpSink
from conveyor.demo.mobile_peers import apns_token, fcm_token
from conveyor.errors import StorageUnavailable
from conveyor.notify import DeliveryOptions, Email, Notifier, SmtpChannel
from conveyor.notify.models import Item
from tests.notify.helpers import free_port
from tests.support.mobile import mobile_peers

OPTIONS = DeliveryOptions(lanes=2, envelopes=4, visibility_timeout=30, wait_seconds=0,
                          backoff_base=1.0, backoff_max=1.0, max_attempts=50)


async def _until(done: object, what: str, clock: ManualClock | None = None,
                 seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
        if clock is not None:
            clock.advance(0.5)  # the retries' backoff (1 s) passes on the broker's clock


def _lines(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == level and text in r.getMessage()]


async def test_an_smtp_server_down_then_back_is_logged_once_each_way(
        broker: Broker, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    sink = SmtpSink()
    server = Controller(sink, hostname="127.0.0.1", port=port)
    server.start()
    channel = SmtpChannel("127.0.0.1", port, pool_size=2)
    notifier = Notifier(broker, channels={"email": channel})
    deliverer = notifier.deliverer(OPTIONS)
    running = asyncio.create_task(deliverer.run())
    try:
        await notifier.asend_many([Email(to=f"a{i}@example.com", subject="s", text="t")
                                   for i in range(5)])
        await _until(lambda: len(sink.messages) >= 5, "first five delivered")
        server.stop()
        await notifier.asend_many([Email(to=f"b{i}@example.com", subject="s", text="t")
                                   for i in range(20)])
        where = f"the SMTP server 127.0.0.1:{port} is unreachable"
        await _until(lambda: _lines(caplog, logging.WARNING, where), "a warning", clock)
        for _ in range(20):  # more failed tries while it is down: no more lines
            clock.advance(0.5)
            await asyncio.sleep(0.05)
        server = Controller(sink, hostname="127.0.0.1", port=port)
        server.start()
        await _until(lambda: len(sink.received) >= 25, "all delivered after", clock)
        await _until(lambda: _lines(caplog, logging.INFO, "reachable again"), "recovery")
    finally:
        deliverer.stop()
        await running
        server.stop()
    warnings = _lines(caplog, logging.WARNING, "SMTP server")
    assert len(warnings) == 1, warnings
    assert "emails not sent" in warnings[0] and "retrying" in warnings[0]
    assert "Connect" in warnings[0] or "refused" in warnings[0].lower(), warnings[0]
    recovered = _lines(caplog, logging.INFO, "reachable again")
    assert len(recovered) == 1 and f"127.0.0.1:{port}" in recovered[0], recovered
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING]
    counts = await notifier.counts()
    assert counts["email"]["sent"] == 25 and counts["email"].get("failed", 0) == 0


@pytest.mark.parametrize("kind", ["fcm", "apns"])
async def test_a_push_provider_down_then_back_is_logged_once_each_way(
        kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with mobile_peers(tmp_path) as peers:
        channel = peers.fcm_channel() if kind == "fcm" else peers.apns_channel()
        token = fcm_token(1) if kind == "fcm" else apns_token(1)
        item = Item(uuid.uuid4().hex, token, None, {}, {"title": "t", "body": "b"}, 0)
        live, channel.url = channel.url, f"https://127.0.0.1:{free_port()}"  # nobody there
        try:
            for _ in range(3):
                [down] = await channel.send_many([item], [channel.render(item)])
                assert down.outcome == "transient"
            await channel.close()
            channel.url = live
            [back] = await channel.send_many([item], [channel.render(item)])
        finally:
            await channel.close()
    assert back.outcome == "sent", back
    name = "FCM" if kind == "fcm" else "APNs"
    warnings = _lines(caplog, logging.WARNING, f"{name} https://127.0.0.1:")
    assert len(warnings) == 1 and "is unreachable" in warnings[0], warnings
    recovered = _lines(caplog, logging.INFO, "reachable again")
    # (named by the address it was first used with: this test moved the provider back)
    assert len(recovered) == 1 and recovered[0].startswith(f"{name} https://"), recovered


@pytest.mark.timeout(60)
def test_notify_worker_says_when_its_smtp_server_is_down_and_back(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'n.db'}"
    Notifier(db, channels={"email": SmtpChannel()}).send_many(
        [Email(to=f"w{i}@example.com", subject="s", text="t") for i in range(3)])
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "notify", "worker", "--smtp",
         f"127.0.0.1:{port}", "--database", db, "--seconds", "20"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environment)
    assert worker.stderr is not None
    sink = SmtpSink()
    server: Controller | None = None
    lines: list[str] = []
    try:
        for line in worker.stderr:
            lines.append(line)
            if server is None and "is unreachable" in line:
                server = Controller(sink, hostname="127.0.0.1", port=port)
                server.start()  # retried after the backoff (2.5-5 s): delivered then
            if "reachable again" in line:
                break
        deadline = time.monotonic() + 20  # the other retries (their backoff is jittered)
        while sum(sink.received.values()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        worker.terminate()
        out, err = worker.communicate(timeout=30)
        lines.append(err)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if server is not None:
            server.stop()
    text = "".join(lines)
    assert text.count("WARNING") == 1, text
    assert f"the SMTP server 127.0.0.1:{port} is unreachable: 1 email not sent" in text
    assert "Traceback" not in text
    assert text.count(f"the SMTP server 127.0.0.1:{port} is reachable again") == 1, text
    assert sum(sink.received.values()) == 3
    assert json.loads(out.splitlines()[-1])["sent"] == 3


async def test_a_database_outage_is_logged_once_by_the_delivery_lanes(
        broker: Broker, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)
    notifier = Notifier(broker, channels={"email": SmtpChannel("127.0.0.1", free_port())})
    deliverer = notifier.deliverer(OPTIONS)
    receive = broker.receive
    down = True

    async def flaky(*args: object, **kwargs: object) -> object:
        if down:
            raise StorageUnavailable("PostgreSQL is unavailable: connection refused")
        return await receive(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(broker, "receive", flaky)
    running = asyncio.create_task(deliverer.run())
    try:
        await asyncio.sleep(2.5)  # both lanes fail a few times (a pause of 1 s each)
        down = False
        await _until(lambda: _lines(caplog, logging.INFO, "reachable again"), "recovery")
    finally:
        deliverer.stop()
        await running
    warnings = _lines(caplog, logging.WARNING, "the database is unavailable")
    assert len(warnings) == 1 and "a batch failed" in warnings[0], warnings
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING]
