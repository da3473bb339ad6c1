"""The examples run: enrollment (FastAPI + SMTP worker) and orders (three processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


async def test_enrollment_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = _free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    queue_url = f"sqlite:///{tmp_path}/queue.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(ENROLLMENT_QUEUE_URL=queue_url, SMTP_HOST="127.0.0.1", SMTP_PORT=str(port),
               PYTHONPATH=str(EXAMPLES / "enrollment"))
    for key in ("ENROLLMENT_QUEUE_URL", "SMTP_HOST", "SMTP_PORT"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("ENROLLMENT_DATABASE", str(tmp_path / "enrollments.db"))
    monkeypatch.syspath_prepend(str(EXAMPLES / "enrollment"))
    for name in ("api", "tasks"):
        sys.modules.pop(name, None)
    import api  # type: ignore[import-not-found]
    import tasks  # type: ignore[import-not-found]

    command = [sys.executable, "-m", "conveyor.cli.main", "worker", "tasks:app"]
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(command, cwd=EXAMPLES / "enrollment", env=env,  # noqa: ASYNC220
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        transport = httpx.ASGITransport(app=api.api)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            started = time.monotonic()
            for i in range(5):
                response = await client.post("/enrollments", json={
                    "name": f"Student {i}", "email": f"s{i}@example.com",
                    "course": "Queues 101"})
                assert response.status_code == 201, response.text
            assert time.monotonic() - started < 5  # answered at once, not after SMTP
        deadline = time.monotonic() + 20
        while len(inbox.messages) < 5 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert sorted(r[0][0] for r in inbox.messages) == [f"s{i}@example.com"
                                                           for i in range(5)]
        assert b"Subject: Welcome to Queues 101" in inbox.messages[0][1]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
        log.close()
        await tasks.app.aclose()
        smtp.stop()
        for name in ("api", "tasks"):
            sys.modules.pop(name, None)


@pytest.mark.postgres
def test_orders_example(postgres_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    result = subprocess.run([sys.executable, str(EXAMPLES / "orders" / "run.py"),
                             "--database", postgres_url, "--orders", "300"],
                            env=env, capture_output=True, text=True, timeout=90,
                            cwd=EXAMPLES / "orders")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "300 COMPLETED, 0 PENDING" in result.stdout
    assert "processed twice: 0" in result.stdout
