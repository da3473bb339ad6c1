"""examples/wonderq: producer and consumer against a real server for a few seconds; the
consumer's slow jobs outlast the lock, so redelivery shows in its output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.http.server import start_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wonderq"


def test_wonderq_producer_and_consumer(tmp_path: Path) -> None:
    server = start_server(tmp_path, ["--database", f"sqlite:///{tmp_path}/c.db", "--no-sqs"])
    try:
        common = ["--url", server.url, "--interval", "0.3", "--visibility", "1",
                  "--seed", "7"]
        with subprocess.Popen(
                [sys.executable, str(EXAMPLE / "producer.py"), *common, "--duration", "2.5"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as producer, \
             subprocess.Popen(
                [sys.executable, str(EXAMPLE / "consumer.py"), *common, "--duration", "3.5"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as consumer:
            produced = producer.communicate(timeout=30)[0].decode()
            consumed = consumer.communicate(timeout=30)[0].decode()
        assert producer.returncode == 0, produced
        assert consumer.returncode == 0, consumed
        queues = set(re.findall(r"sent \d to (wonder-[abc])", produced))
        assert len(queues) >= 2, produced
        assert "consumer: done" in consumed, consumed
        assert "slow job" in consumed, consumed
        assert re.search(r"REDELIVERED wonder-[abc] #\d+ .* receive count [2-9]", consumed), \
            consumed
        assert "too late for" in consumed, consumed
        # The dashboard lists the three queues.
        page = httpx.get(server.url + "/").text
        assert all(f'data-name="wonder-{x}"' in page for x in "abc")
    finally:
        assert server.stop() == 0
