"""`kill -9` of real `conveyor notify worker` processes, again and again, while they deliver
20,000 notifications (70% email into an SMTP sink, 30% Web Push into a push endpoint that
verifies VAPID and decrypts; both real peers in processes of their own, on loopback).

What the sinks received, counted by Message-ID and by push `Topic` (both the delivery id),
must show: lost = 0, and extra copies per channel ≤ kills × `--in-flight` (the bound
`DeliveryOptions.in_flight` names), each of them a resend the ledger counted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from conveyor.broker.broker import Broker
from conveyor.demo.peers import AiosmtpdSink, PushSink
from conveyor.demo.workload import TEMPLATES, data, email_address
from conveyor.notify import Channel, Email, Notifier, WebPush
from conveyor.storage.factory import storage_from_url
from tests.notify.helpers import free_port

N_EMAIL, N_PUSH = 14_000, 6_000
IN_FLIGHT = 400  # the default, given explicitly so the bound below is the one tested
LANES = 4
KILLS = 4
KILL_EVERY = 3.0  # seconds between kills (a worker is killed only once it has run this long)
VISIBILITY = 5  # seconds: how soon a killed worker's envelopes come back


def _keys() -> tuple[list[tuple[bytes, str, bytes]], list[dict[str, Any]]]:
    from conveyor.demo.loopback import make_subscriber

    subs = [make_subscriber() for _ in range(4)]
    der = [s.private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
           for s in subs]
    return ([(d, s.p256dh, s.auth) for d, s in zip(der, subs)],
            [s.subscription("x")["keys"] for s in subs])


class Workers:
    """`conveyor notify worker` processes; `kill9` one and start its replacement."""

    def __init__(self, args: list[str], logs: Path) -> None:
        self.args = args
        self.logs = logs
        self.procs: list[tuple[subprocess.Popen[bytes], float]] = []
        self.started = 0

    def start(self) -> None:
        log = (self.logs / f"worker-{self.started}.log").open("wb")
        self.started += 1
        proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        self.procs.append((proc, time.monotonic()))

    def oldest_age(self) -> float:
        return time.monotonic() - min(t for _, t in self.procs)

    def kill9(self) -> None:
        proc, _ = min(self.procs, key=lambda p: p[1])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.procs = [p for p in self.procs if p[0] is not proc]
        self.start()

    def stop(self) -> None:
        for proc, _ in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _enqueue(broker: Broker, push_port: int, sub_keys: list[dict[str, Any]]
                   ) -> tuple[list[str], list[str]]:
    notifier = Notifier(broker, channels={"email": Channel(), "push": Channel()},
                        templates=TEMPLATES)
    emails = [Email(to=email_address(i), template="demo", data=data(i))
              for i in range(N_EMAIL)]
    pushes = [WebPush(subscription={"endpoint": f"http://127.0.0.1:{push_port}/push/{i}",
                                    "keys": sub_keys[i % len(sub_keys)]},
                      template="demo", data=data(i))
              for i in range(N_EMAIL, N_EMAIL + N_PUSH)]
    by_channel = notifier.items([*emails, *pushes])
    for channel, items in by_channel.items():
        await notifier.enqueue_items(channel, items)
    return [i.id for i in by_channel["email"]], [i.id for i in by_channel["push"]]


@pytest.mark.slow
async def test_kill9_of_notify_workers_loses_nothing_and_copies_stay_in_the_bound(
        database_url: str, tmp_path: Path) -> None:
    smtp_port, push_port = free_port(), free_port()
    keys, sub_keys = _keys()
    smtp = AiosmtpdSink(smtp_port)
    push = PushSink(push_port, keys, verify_every=10)
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, text in TEMPLATES.items():
        (templates / name).write_text(text)
    pem = tmp_path / "vapid.pem"
    pem.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    workers = Workers([
        sys.executable, "-m", "conveyor.cli.main", "notify", "worker", "--database",
        database_url, "--smtp", f"127.0.0.1:{smtp_port}", "--vapid-key", str(pem),
        "--templates", str(templates), "--lanes", str(LANES), "--in-flight", str(IN_FLIGHT),
        "--visibility-timeout", str(VISIBILITY)], tmp_path)
    broker = Broker(storage_from_url(database_url), sweep_interval=None)
    await broker.start()
    in_flight_at_kill: list[int] = []
    try:
        email_ids, push_ids = await _enqueue(broker, push_port, sub_keys)
        total = len(email_ids) + len(push_ids)
        assert total == N_EMAIL + N_PUSH
        for _ in range(2):
            workers.start()
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            counts = await broker.ledger.counts()
            done = sum(c["sent"] + c["failed"] + c["unknown"] for c in counts.values())
            if done == total:
                break
            sending = sum(c["sending"] for c in counts.values())
            # kill only mid-send: a worker that has run a while, with chunks on the wire
            if len(in_flight_at_kill) < KILLS and workers.oldest_age() >= KILL_EVERY and \
                    sending:
                workers.kill9()
                in_flight_at_kill.append(sending)
        workers.stop()
        counts = await broker.ledger.counts()
        resent = await broker.ledger.resent()
    finally:
        workers.stop()
        await broker.close()
        email_seen = smtp.results()
        push_seen = push.results()
        smtp.close()
        push.close()
    kills = len(in_flight_at_kill)
    assert kills == KILLS, f"only {kills} kills before the run ended: {counts}"
    for channel, ids, seen, domain in (("email", email_ids, email_seen, "@localhost"),
                                       ("push", push_ids, push_seen, "")):
        got: Counter[str] = seen["ids"]
        expected = {i + domain for i in ids}
        lost = len(expected - set(got))
        extra = sum(n - 1 for n in got.values() if n > 1)
        assert lost == 0, f"{channel}: {lost} lost"
        assert set(got) == expected and seen["bad"] == 0
        assert extra <= kills * IN_FLIGHT, f"{channel}: {extra} extra copies"
        assert extra <= resent.get(channel, 0), f"{channel}: a copy no crash explains"
        assert counts[channel]["sent"] == len(ids), counts
    # for the record (pytest -s): `sending` rows just before each kill (both workers' and
    # earlier kills' not yet resent), and what the sinks and the ledger saw
    print(f"\nkill -9 x{kills}: sending at the kills {in_flight_at_kill}; extra copies "
          f"email {sum(n - 1 for n in email_seen['ids'].values())}, push "
          f"{sum(n - 1 for n in push_seen['ids'].values())}; resent {resent}; "
          f"bound {kills * IN_FLIGHT} per channel")
