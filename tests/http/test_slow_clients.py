"""Slow clients ("slowloris") cannot hold connections: a request head that is not complete
within CONVEYOR_HEADER_TIMEOUT (1 s here) closes its connection, freeing its slot, while
what follows a head (a long poll, a WebSocket, a body at a normal pace) and keep-alive idle
time are not cut by it. A real `conveyor serve` on loopback, raw sockets."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor.client.stream import Stream
from conveyor.config import from_env
from conveyor.errors import InvalidInput
from tests.http.server import ServerProcess, start_server
from tests.support.tls import tls_server

TIMEOUT = 1.0
"""The server's CONVEYOR_HEADER_TIMEOUT."""
SLACK = 1.0
"""How much later than TIMEOUT the server may close (a loaded CI machine)."""
SLOTS = 4
"""The server's CONVEYOR_MAX_CONNECTIONS."""

_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = Path(tmp_path_factory.mktemp("slow"))
    process = start_server(directory, ["--database", f"sqlite:///{directory}/c.db", "--no-sqs"],
                           env={"CONVEYOR_HEADER_TIMEOUT": str(TIMEOUT),
                                "CONVEYOR_MAX_CONNECTIONS": str(SLOTS)})
    yield process
    assert process.stop() == 0, process.logs()


@pytest.fixture
def address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


@pytest.fixture
def queue(server: ServerProcess) -> str:
    name = f"slow{next(_names)}"
    assert httpx.post(f"{server.url}/v1/queues", json={"name": name}).status_code == 201
    return name


def until_closed(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Read until the server closes `sock`: (seconds it took, what it sent). Fails the
    test if it is still open after `limit` seconds."""
    began = time.monotonic()
    received = b""
    while (left := began + limit - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        except ConnectionResetError:
            return time.monotonic() - began, received
        if not chunk:
            return time.monotonic() - began, received
        received += chunk
    pytest.fail(f"the server kept the connection open for {limit} s (got {received!r})")


def test_a_stalled_request_head_is_answered_408_and_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: never ends
        took, answer = until_closed(sock, TIMEOUT + SLACK)
    assert took >= TIMEOUT - 0.2, took
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
        address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        took, answer = until_closed(sock, TIMEOUT + SLACK)
    assert took >= TIMEOUT - 0.2 and answer == b"", (took, answer)


def test_a_trickled_head_is_closed_on_time_not_reset_by_each_byte(
        address: tuple[str, int]) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    with socket.create_connection(address) as sock:
        began = time.monotonic()
        answer = b""
        for byte in head:  # one byte every 0.3 s until the server hangs up
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0.3)[0]:
                chunk = sock.recv(4096)
                answer += chunk
                if not chunk or b"\r\n\r\n" in answer:
                    break
            assert time.monotonic() - began < TIMEOUT + SLACK + 0.3, "still open"
    took = time.monotonic() - began
    assert TIMEOUT - 0.2 <= took <= TIMEOUT + SLACK + 0.3, took
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_stalled_connections_free_their_slots(tmp_path: Path) -> None:
    # A server of its own with a longer timeout: the window in which the stalled sockets
    # hold every slot must outlast their hand-over on a loaded machine (1 s did not).
    timeout = 4.0
    server = start_server(tmp_path, ["--database", f"sqlite:///{tmp_path}/s.db", "--no-sqs"],
                          env={"CONVEYOR_HEADER_TIMEOUT": str(timeout),
                               "CONVEYOR_MAX_CONNECTIONS": str(SLOTS)})
    host, port = server.url.removeprefix("http://").split(":")
    stalled: list[socket.socket] = []
    try:
        began = time.monotonic()
        for _ in range(SLOTS):
            stalled.append(socket.create_connection((host, int(port))))
            stalled[-1].sendall(b"GET /v1/queues HTTP/1.1\r\nHost: x\r\n")
        full = False
        while not full:  # every slot is held: a new client is turned away
            full = httpx.get(f"{server.url}/v1/queues").status_code == 503
            assert time.monotonic() - began < timeout, "the stalled sockets held no slots"
        while (status := httpx.get(f"{server.url}/v1/queues").status_code) != 200:
            assert status == 503
            assert time.monotonic() - began < timeout + SLACK, "the slots were never freed"
            time.sleep(0.05)
        assert time.monotonic() - began >= timeout - 0.2
        for sock in stalled:
            until_closed(sock, 0.5)
    finally:
        for sock in stalled:
            sock.close()
        assert server.stop() == 0, server.logs()


def test_a_long_poll_outlasts_the_header_timeout(server: ServerProcess, queue: str) -> None:
    began = time.monotonic()
    answer = httpx.post(f"{server.url}/v1/queues/{queue}/messages/receive",
                        json={"max_messages": 1, "wait_seconds": 3}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["messages"] == []
    assert time.monotonic() - began >= 2.5


def test_keep_alive_idle_between_requests_is_not_cut(address: tuple[str, int]) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(address) as sock:
        sock.settimeout(5)
        sock.sendall(request)
        assert _one_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(2 * TIMEOUT)  # idle, within uvicorn's keep-alive timeout (5 s)
        sock.sendall(request)
        assert _one_response(sock).startswith(b"HTTP/1.1 200 ")


def _one_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length (its head and body may come apart)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    declared = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    assert declared, head
    length = int(declared.group(1))
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, data
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_body_uploaded_at_a_normal_pace_is_not_cut(server: ServerProcess,
                                                    address: tuple[str, int],
                                                    queue: str) -> None:
    body = json.dumps({"messages": [{"body": {"pad": "x" * 200_000}}]}).encode()
    pieces = [body[i:i + 20_000] for i in range(0, len(body), 20_000)]
    with socket.create_connection(address) as sock:
        sock.sendall(f"POST /v1/queues/{queue}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode())
        for piece in pieces:  # over 2.5 s, well past the header timeout
            time.sleep(2.5 * TIMEOUT / len(pieces))
            sock.sendall(piece)
        _took, answer = until_closed(sock, 10)
    assert re.match(rb"HTTP/1.1 20[01] ", answer), answer[:300]
    stats = httpx.get(f"{server.url}/v1/queues/{queue}").json()["stats"]
    assert stats["visible"] == 1


async def test_a_websocket_stream_outlasts_the_header_timeout(server: ServerProcess,
                                                              queue: str) -> None:
    async with Stream(server.url, queue, credits=1) as stream, httpx.AsyncClient() as http:
        await asyncio.sleep(2.5 * TIMEOUT)
        sent = await http.post(f"{server.url}/v1/queues/{queue}/messages",
                               json={"messages": [{"body": {"n": 1}}]})
        assert sent.is_success, sent.text
        message = await stream.receive(5)
        assert message.body.value() == {"n": 1}


def test_a_stalled_tls_handshake_is_closed(tmp_path: Path) -> None:
    with tls_server(tmp_path, {"CONVEYOR_HEADER_TIMEOUT": str(TIMEOUT)}) as server:
        address = (server.host, server.port)
        with socket.create_connection(address) as sock:  # no ClientHello
            took, _ = until_closed(sock, TIMEOUT + SLACK)
        assert took >= TIMEOUT - 0.2, took
        with socket.create_connection(address) as raw, \
                server.trust.wrap_socket(raw, server_hostname=server.host) as sock:
            took, _ = until_closed(sock, TIMEOUT + SLACK)  # handshake done, no head
        assert took >= TIMEOUT - 0.2, took


def test_the_header_timeout_comes_from_the_environment_and_is_checked() -> None:
    assert from_env({}).server.header_timeout == 10.0
    assert from_env({"CONVEYOR_HEADER_TIMEOUT": "2.5"}).server.header_timeout == 2.5
    for wrong in ("soon", "0", "-1", "nan", "inf", "3601"):
        with pytest.raises(InvalidInput) as refused:
            from_env({"CONVEYOR_HEADER_TIMEOUT": wrong})
        assert "CONVEYOR_HEADER_TIMEOUT" in str(refused.value) \
            or "header_timeout" in str(refused.value), wrong
