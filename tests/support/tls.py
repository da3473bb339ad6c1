"""TLS on loopback for tests: a self-signed certificate (the demo's helper, one copy) and
`conveyor serve` over it."""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from conveyor.demo.tls import self_signed
from tests.http.server import conveyor_command

__all__ = ["TlsServer", "self_signed", "tls_server"]


@dataclass(frozen=True)
class TlsServer:
    """A running `conveyor serve --tls-cert ...`: where it listens, the context that
    trusts its certificate, and its log file."""

    url: str
    host: str
    port: int
    trust: ssl.SSLContext
    log: Path


@contextlib.contextmanager
def tls_server(tmp_path: Path, settings: Mapping[str, str]) -> Iterator[TlsServer]:
    """`conveyor serve` over TLS on a fresh SQLite file, with `settings` (CONVEYOR_*) on an
    environment cleared of the caller's; answering /healthz when yielded, stopped after
    (and its exit status checked)."""
    cert, key = self_signed(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(settings)
    log = tmp_path / "tls.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*conveyor_command(), "serve", "--host", "127.0.0.1", "--port", "0", "--no-sqs",
             "--database", f"sqlite:///{tmp_path}/t.db", "--tls-cert", str(cert),
             "--tls-key", str(key)], stdout=out, stderr=subprocess.STDOUT, env=env)
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"HTTP API on (https://\S+) ", log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        url = found.group(1)
        while True:
            try:
                httpx.get(f"{url}/healthz", verify=trust, timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        host, port = url.removeprefix("https://").split(":")
        yield TlsServer(url, host, int(port), trust, log)
    finally:
        process.terminate()
        assert process.wait(20) == 0, log.read_text()
