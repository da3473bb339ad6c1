"""A server with few file handles and more long polls than handles stays responsive, logs a
line per interval rather than one per failed accept, says so on `/readyz`, and recovers.

The server runs under `ulimit -n 256` (soft and hard, so it cannot raise it) while the test
parks 600 long polls. With the default budget the connections past it are answered 503 at
once; with a budget above the limit (CONVEYOR_MAX_CONNECTIONS) accept() itself fails for
want of handles and the listener backs off.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from tests.faults.load import create_queue
from tests.faults.test_idle_long_polls import raise_open_files
from tests.http.server import ServerProcess, conveyor_command, start_server
from tests.support.tls import tls_server

ROOT = Path(__file__).resolve().parents[2]

LIMIT = 256
PARKED = 600
Parked = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def limited(files: int) -> list[str]:
    """A shell that sets the open-files limit (soft and hard) and runs the rest."""
    return ["sh", "-c", f'ulimit -n {files} && exec "$@"', "sh"]


async def park(host: str, port: int) -> Parked | None:
    """A 20-second long poll on the empty queue `idle`, left waiting (None: refused)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        body = json.dumps({"max_messages": 1, "wait_seconds": 20}).encode()
        writer.write(f"POST /v1/queues/idle/messages/receive HTTP/1.1\r\nHost: {host}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        await writer.drain()
    except OSError:
        return None
    return reader, writer


async def park_many(server: ServerProcess) -> list[Parked]:
    host, port = server.url.removeprefix("http://").split(":")
    found = await asyncio.gather(*(park(host, int(port)) for _ in range(PARKED)))
    return [p for p in found if p is not None]


def cpu_seconds(server: ServerProcess) -> float:
    times = psutil.Process(server.process.pid).cpu_times()
    return float(times.user + times.system)


async def wait_ready(url: str, timeout: float = 15.0) -> float:
    """Seconds until a fresh connection's `/readyz` says ready."""
    began = time.monotonic()
    while True:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return time.monotonic() - began
        except httpx.HTTPError:
            pass
        assert time.monotonic() - began < timeout, "the server never became ready again"
        await asyncio.sleep(0.2)


async def works(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        sent = await client.post("/v1/queues/busy/messages", json={"messages": [{"body": 1}]})
        assert sent.status_code == 201, sent.text
        got = await client.post("/v1/queues/busy/messages/receive", json={"max_messages": 1})
        assert [m["body"] for m in got.json()["messages"]] == [1]


def check_logs(server: ServerProcess, *, clean: bool = True) -> list[str]:
    """The file-handle report lines; the log stays small, with no line per failed accept
    (and, when `clean`, no error at all: the budget kept handles for the database)."""
    text = server.logs()
    assert "socket.accept() out of system resource" not in text, text[-3000:]
    if clean:
        assert "Traceback" not in text and "Too many open files" not in text, text[-3000:]
    assert len(text) < 300_000, len(text)
    return re.findall(r".*file handles: .*", text)


async def close_all(parked: list[Parked]) -> None:
    for _, writer in parked:
        writer.close()
    await asyncio.sleep(0)


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_past_the_connection_budget_new_connections_get_a_quick_503(
        database_url: str, tmp_path: Path) -> None:
    raise_open_files(PARKED + 500)
    server = await asyncio.to_thread(start_server, tmp_path, [
        "--database", database_url, "--no-sqs"], wrapper=limited(LIMIT))
    parked: list[Parked] = []
    try:
        create_queue(server.url, "idle")
        create_queue(server.url, "busy")
        parked = await park_many(server)
        await asyncio.sleep(1.0)
        cpu_before, began = cpu_seconds(server), time.monotonic()
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            for _ in range(5):
                asked = time.monotonic()
                health = await client.get("/healthz")
                assert health.status_code == 200 and time.monotonic() - asked < 2.0
                ready = await client.get("/readyz")
                assert ready.status_code == 503, ready.text
                assert ready.json()["reason"] == "too_many_connections"
                sent = await client.post("/v1/queues/busy/messages",
                                         json={"messages": [{"body": 0}]})
                assert sent.status_code == 503
                assert sent.json()["error"]["code"] == "too_many_connections"
                assert sent.headers["retry-after"] == "1"
                await asyncio.sleep(0.5)
        busy = (cpu_seconds(server) - cpu_before) / (time.monotonic() - began)
        await close_all(parked)
        took = await wait_ready(server.url)
        await works(server.url)
        print(f"at the budget: {busy:.0%} of a core; ready {took:.1f} s after the polls left")
        assert busy < 0.5
    finally:
        await close_all(parked)
        await asyncio.to_thread(server.stop)
    reports = check_logs(server)
    assert 1 <= len(reports) <= 3, reports
    assert "refused" in reports[0]


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_out_of_file_handles_accepting_backs_off(database_url: str,
                                                        tmp_path: Path) -> None:
    raise_open_files(PARKED + 500)
    server = await asyncio.to_thread(
        start_server, tmp_path, ["--database", database_url, "--no-sqs"],
        env={"CONVEYOR_MAX_CONNECTIONS": "100000"}, wrapper=limited(LIMIT))
    parked: list[Parked] = []
    try:
        create_queue(server.url, "idle")
        create_queue(server.url, "busy")
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as kept:
            assert (await kept.get("/readyz")).status_code == 200  # a connection kept open
            parked = await park_many(server)
            await asyncio.sleep(1.0)
            cpu_before, began = cpu_seconds(server), time.monotonic()
            ready = await kept.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["reason"] == "too_many_open_files"
            await asyncio.sleep(2.0)
            busy = (cpu_seconds(server) - cpu_before) / (time.monotonic() - began)
        await close_all(parked)
        took = await wait_ready(server.url)
        await works(server.url)
        print(f"out of handles: {busy:.0%} of a core; ready {took:.1f} s after the polls left")
        assert busy < 0.5
    finally:
        await close_all(parked)
        await asyncio.to_thread(server.stop)
    # Past the budget the database's own connections can fail too (each such request
    # logs its error): why the default budget keeps a reserve.
    reports = check_logs(server, clean=False)
    assert 1 <= len(reports) <= 3, reports
    assert any("paused accepting" in line for line in reports), reports


def soft_limit_only(files: int) -> list[str]:
    """A shell that lowers only the soft open-files limit and runs the rest."""
    return ["sh", "-c", f'ulimit -S -n {files} && exec "$@"', "sh"]


def test_serve_and_workers_raise_their_soft_limit(sqlite_url: str, tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= LIMIT:
        pytest.skip(f"the hard open-files limit is {hard}")
    server = start_server(tmp_path, ["--database", sqlite_url, "--no-sqs"],
                          wrapper=soft_limit_only(LIMIT))
    try:
        soft, _ = psutil.Process(server.process.pid).rlimit(psutil.RLIMIT_NOFILE)
        assert soft > LIMIT
        assert f"raised the open-files limit from {LIMIT}" in server.logs()
    finally:
        assert server.stop() == 0, server.logs()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(TEST_CONVEYOR_URL=sqlite_url, TEST_OUT=str(tmp_path / "out.txt"),
               PYTHONPATH=str(ROOT))
    pool = subprocess.Popen([*soft_limit_only(LIMIT), *conveyor_command(), "worker",
                             "tests.worker.apps.sample:app", "--processes", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while len(psutil.Process(pool.pid).children()) < 2:
            assert time.monotonic() < deadline, "the pool never started its workers"
            time.sleep(0.05)
        for process in [psutil.Process(pool.pid), *psutil.Process(pool.pid).children()]:
            assert process.rlimit(psutil.RLIMIT_NOFILE)[0] > LIMIT
    finally:
        pool.terminate()
        pool.wait(30)


def test_over_tls_past_the_budget_the_answer_is_tls_too(tmp_path: Path) -> None:
    held: list[ssl.SSLSocket] = []
    with tls_server(tmp_path, {"CONVEYOR_MAX_CONNECTIONS": "3"}) as server:
        try:
            for _ in range(3):  # connected and idle: each counts against the budget
                held.append(server.trust.wrap_socket(
                    socket.create_connection((server.host, server.port)),
                    server_hostname=server.host))
                time.sleep(0.3)  # handed over (one on its way counts too: in turn)
            with httpx.Client(base_url=server.url, verify=server.trust, timeout=5) as client:
                assert client.get("/healthz").status_code == 200
                ready = client.get("/readyz")
                assert ready.status_code == 503, ready.text
                assert ready.json()["reason"] == "too_many_connections"
            for sock in held:
                sock.close()
            deadline = time.monotonic() + 10
            while httpx.get(f"{server.url}/readyz", verify=server.trust,
                            timeout=5).status_code != 200:
                assert time.monotonic() < deadline, "never ready again"
                time.sleep(0.2)
        finally:
            for sock in held:
                sock.close()
    log = server.log
    # /healthz and /readyz were answered by the listener (over TLS), not by the app
    refused = re.findall(r"file handles: refused (\d+) new connections", log.read_text())
    assert sum(map(int, refused)) >= 2, log.read_text()
