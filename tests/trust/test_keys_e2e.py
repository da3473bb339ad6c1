"""API keys end to end: `conveyor keys` in a subprocess, `conveyor serve` enforcing them on
the native API, the WebSocket stream and the dashboard (cookie login), revocation, and the
warning on a public address without keys."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import websockets

from conveyor import Client, ConveyorError
from conveyor.client.stream import Stream
from tests.http.server import conveyor_command, start_server


def keys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*conveyor_command(), "keys", *args], capture_output=True,
                          text=True, timeout=60)


async def stream_opens(url: str) -> bool:
    try:
        async with websockets.connect(url, open_timeout=5) as socket:
            await socket.send('{"type": "credit", "credits": 1}')
            return True
    except websockets.exceptions.InvalidStatus:
        return False


async def client_stream_opens(url: str, api_key: str | None) -> bool:
    async with Stream(url, "jobs-a", credits=1, api_key=api_key):
        return True


@pytest.mark.timeout(90)
def test_keys_through_the_cli_and_a_live_server(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/keys.db"
    made = keys("create", "ops", "--allow", "manage", "--allow", "send,receive:jobs-*",
                "--database", database)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("cvk_") and "shown only now" in made.stderr
    listed = keys("list", "--database", database)
    assert "ops" in listed.stdout and token not in listed.stdout
    assert "send,receive:jobs-*" in listed.stdout
    bad = keys("create", "x", "--allow", "read", "--database", database)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr

    server = start_server(tmp_path, ["--database", database, "--no-sqs"])
    try:
        auth = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("/v1/queues").status_code == 401
            assert http.post("/v1/queues", json={"name": "jobs-a"},
                             headers=auth).status_code == 201
            assert http.get("/healthz").status_code == 200

            ws = server.url.replace("http://", "ws://") + "/v1/queues/jobs-a/stream"
            assert not asyncio.run(stream_opens(ws))
            assert asyncio.run(stream_opens(f"{ws}?api_key={token}"))
            assert asyncio.run(client_stream_opens(server.url, token))
            with pytest.raises(ConveyorError) as refused:
                asyncio.run(client_stream_opens(server.url, None))
            assert refused.value.code == "unauthorized", refused.value.code

            login = http.get(f"/?api_key={token}")
            assert login.status_code == 303 and login.headers["location"] == "/"
            assert "HttpOnly" in login.headers["set-cookie"]
            assert "SameSite=Strict" in login.headers["set-cookie"]
            assert http.get("/").status_code == 200  # the cookie from the login
            http.cookies.clear()
            assert http.get("/").status_code == 401

            env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
            cli = [*conveyor_command(), "queue", "list", "--url", server.url]
            refused = subprocess.run(cli, capture_output=True, text=True, env=env,
                                     timeout=60)
            assert refused.returncode == 1 and "unauthorized" in refused.stderr
            allowed = subprocess.run(cli, capture_output=True, text=True, timeout=60,
                                     env={**env, "CONVEYOR_API_KEY": token})
            assert allowed.returncode == 0 and "jobs-a" in allowed.stdout, allowed.stderr

            # The Python clients take the key too (and a worker's source reads it from
            # CONVEYOR_API_KEY).
            with Client(server.url) as anonymous, pytest.raises(ConveyorError):
                anonymous.list_queues()
            with Client(server.url, api_key=token) as client:
                assert [q.name for q in client.list_queues()] == ["jobs-a"]

            assert keys("revoke", "ops", "--database", database).returncode == 0
            deadline = time.monotonic() + 10  # the server caches a key for 5 s
            while http.get("/v1/queues", headers=auth).status_code != 401:
                assert time.monotonic() < deadline, "the revoked key still works"
                time.sleep(0.25)
    finally:
        server.stop()


def test_public_address_without_keys_warns_and_refuses(tmp_path: Path) -> None:
    server = start_server(tmp_path, ["--database", f"sqlite:///{tmp_path}/open.db",
                                     "--sqs-port", "0", "--host", "0.0.0.0"])
    try:
        assert "WARNING" in server.logs() and "no API keys" in server.logs()
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(f"{url}/v1/queues", timeout=10).status_code == 401
        assert server.sqs_url is not None
        sqs = httpx.post(server.sqs_url.replace("0.0.0.0", "127.0.0.1") + "/",
                         content=b"{}", timeout=10, headers={
                             "content-type": "application/x-amz-json-1.0",
                             "x-amz-target": "AmazonSQS.ListQueues"})
        assert sqs.status_code == 403  # unsigned
        assert sqs.json()["__type"].endswith("MissingAuthenticationToken")
    finally:
        server.stop()
