"""A consumer frozen with SIGSTOP past its lease: the message is delivered again, and the
frozen consumer's late ack (after SIGCONT) does not delete the new lease."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.faults.load import create_queue, stats
from tests.http.server import start_server

LEASE = 1  # seconds


def test_frozen_consumer_late_ack_is_stale(database_url: str, tmp_path: Path) -> None:
    server = start_server(tmp_path, ["--database", database_url, "--no-sqs"])
    consumer: subprocess.Popen[str] | None = None
    try:
        create_queue(server.url, "frozen", visibility=LEASE)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            sent = client.post("/v1/queues/frozen/messages",
                               json={"messages": [{"body": "only"}]}).json()
            message_id = sent["messages"][0]["id"]
            consumer = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("slow_consumer.py")),
                 server.url, "frozen", "3"], stdout=subprocess.PIPE, text=True)
            assert consumer.stdout is not None
            line = consumer.stdout.readline().split()
            consumer.send_signal(signal.SIGSTOP)  # mid-work, before its ack
            assert line[:2] == ["got", message_id], line
            time.sleep(LEASE + 0.5)

            again = client.post("/v1/queues/frozen/messages/receive",
                                json={"max_messages": 1, "wait_seconds": 2,
                                      "visibility_timeout": 60}).json()["messages"]
            assert [m["id"] for m in again] == [message_id]
            assert again[0]["receive_count"] == 2
            assert again[0]["receipt_handle"] != line[2]

            consumer.send_signal(signal.SIGCONT)
            late = consumer.stdout.readline().split()
            assert consumer.wait(10) == 0
            assert late == ["ack", "stale"], late
            left = stats(server.url, "frozen")
            assert (left["visible"], left["in_flight"]) == (0, 1), left

            done = client.post("/v1/queues/frozen/messages/delete", json={
                "receipt_handles": [again[0]["receipt_handle"]]}).json()
            assert done["results"][0]["status"] == "ok"
            left = stats(server.url, "frozen")
            assert left["visible"] + left["in_flight"] + left["delayed"] == 0, left
    finally:
        if consumer is not None and consumer.poll() is None:
            consumer.send_signal(signal.SIGCONT)
            consumer.kill()
            consumer.wait()
        if consumer is not None and consumer.stdout is not None:
            consumer.stdout.close()
        server.stop()
