"""`conveyor serve` on SIGTERM: waiting long polls are answered at once, requests in flight
finish, nothing acknowledged is lost, and the process exits 0. And TLS: both servers on a
self-signed certificate made here with `cryptography`, reached by httpx and boto3."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.faults.load import Load, create_queue, drain, reconcile
from tests.http.server import conveyor_command, start_server
from tests.support.tls import self_signed


@pytest.mark.timeout(60)
def test_sigterm_answers_long_polls_and_loses_nothing(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/stop.db"
    server = start_server(tmp_path, ["--database", database, "--no-sqs"])
    create_queue(server.url, "stop")
    create_queue(server.url, "parked")
    answers: list[tuple[int, float]] = []
    ready = threading.Barrier(21)

    def long_poll() -> None:
        with httpx.Client(timeout=30) as client:
            client.get(f"{server.url}/healthz")  # connected before the clock starts
            ready.wait(20)
            answer = client.post(f"{server.url}/v1/queues/parked/messages/receive",
                                 json={"wait_seconds": 20})
            answers.append((answer.status_code, time.monotonic()))

    polls = [threading.Thread(target=long_poll) for _ in range(20)]
    for poll in polls:
        poll.start()
    ready.wait(20)
    load = Load(server.url, "stop", producers=2, consumers=1).start()
    time.sleep(1.5)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    status = server.process.wait(15)
    stopped = time.monotonic() - signalled
    for poll in polls:
        poll.join(10)
    ledger = load.stop()
    assert status == 0, server.logs()
    assert "Traceback" not in server.logs(), server.logs()[-5000:]
    assert len(answers) == 20 and all(code == 200 for code, _ in answers), answers
    assert max(at for _, at in answers) - signalled < 3.0  # not the 20 s they asked for
    assert stopped < 6.0, stopped

    restarted = start_server(tmp_path, ["--database", database, "--no-sqs"])
    try:
        drained = drain(restarted.url, "stop", ledger)
    finally:
        restarted.stop()
    report = reconcile(ledger, drained)
    print("SIGTERM", f"stopped in {stopped:.2f} s", report, dict(ledger.errors))
    assert report.acknowledged_sends > 0
    report.check()


# botocore's pooled client sockets may be collected during a later test; not a server leak
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.timeout(60)
def test_tls_on_both_servers(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    log = tmp_path / "tls.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*conveyor_command(), "serve", "--host", "127.0.0.1", "--port", "0",
             "--sqs-port", "0", "--database", f"sqlite:///{tmp_path}/tls.db",
             "--tls-cert", str(cert), "--tls-key", str(key)],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 30
        while not re.search(r"SQS endpoint on \S+", log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        text = log.read_text()
        api = re.search(r"HTTP API on (https://\S+) ", text)
        sqs_url = re.search(r"SQS endpoint on (https://\S+)", text)
        assert api and sqs_url, text
        while True:
            try:
                health = httpx.get(f"{api.group(1)}/healthz", verify=trust, timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert health.status_code == 200
        with pytest.raises(httpx.ConnectError):  # an unknown certificate is refused
            httpx.get(f"{api.group(1)}/healthz", timeout=5)
        with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP gets no answer
            httpx.get(api.group(1).replace("https", "http") + "/healthz", timeout=5)
        client: Any = boto3.session.Session().client(
            "sqs", endpoint_url=sqs_url.group(1), region_name="us-east-1",
            aws_access_key_id="x", aws_secret_access_key="x", verify=str(cert),
            config=Config(retries={"max_attempts": 1}))
        url = client.create_queue(QueueName="secure")["QueueUrl"]
        assert url.startswith("https://")
        client.send_message(QueueUrl=url, MessageBody="over tls")
        got = client.receive_message(QueueUrl=url)["Messages"]
        assert [m["Body"] for m in got] == ["over tls"]
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
