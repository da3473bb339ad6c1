"""A real `conveyor serve` process for tests: free loopback port, given database, logs in a file."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

_ANNOUNCE = re.compile(r"HTTP API on (http://\S+) ")
_SQS_ANNOUNCE = re.compile(r"SQS endpoint on (http://\S+)")


def conveyor_command() -> list[str]:
    """The installed `conveyor` script next to this Python, else `python -m`."""
    script = Path(sys.executable).parent / "conveyor"
    if script.exists():
        return [str(script)]
    found = shutil.which("conveyor")
    return [found] if found else [sys.executable, "-m", "conveyor.cli.main"]


@dataclass
class ServerProcess:
    """A running server: its base URL, process and log file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    sqs_url: str | None = None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def logs(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace")


def start_server(directory: Path, args: Sequence[str] = (), *,
                 env: Mapping[str, str] | None = None, timeout: float = 30.0,
                 wrapper: Sequence[str] = ()) -> ServerProcess:
    """Start `conveyor serve --port 0 ARGS` and wait until /healthz answers (`wrapper`:
    a command line that runs it, e.g. a shell setting a limit first)."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"server-{time.monotonic_ns()}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    environment.update(env or {})
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*wrapper, *conveyor_command(), "serve", "--host", "127.0.0.1", "--port", "0",
             *args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment)
    server = ServerProcess("", process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"conveyor serve exited with {process.returncode}:\n"
                               f"{server.logs()}")
        text = server.logs()
        match = _ANNOUNCE.search(text)
        if match and _healthy(match.group(1)):
            server.url = match.group(1)
            # Read again: the sockets listen before the lines after the API's are written,
            # so /healthz can answer a request made while `text` still lacked them.
            sqs = _SQS_ANNOUNCE.search(server.logs())
            server.sqs_url = sqs.group(1) if sqs else None
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"conveyor serve did not become healthy:\n{server.logs()}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
