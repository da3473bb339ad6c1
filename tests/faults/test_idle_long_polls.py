"""Thousands of idle long-poll connections do not stop others from being served.

The test raises its open-file limit (the server inherits it), parks IDLE raw HTTP
connections in 20-second long polls on an empty queue, then times sends and receives on
another queue, and checks that a message sent to the parked queue reaches a parked poll.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.load import create_queue
from tests.http.server import start_server

IDLE = 2000


def raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < wanted:
        pytest.skip(f"cannot raise the open-file limit to {wanted}")


async def park(host: str, port: int, queue: str) -> tuple[asyncio.StreamReader,
                                                            asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    body = json.dumps({"max_messages": 1, "wait_seconds": 20}).encode()
    writer.write(f"POST /v1/queues/{queue}/messages/receive HTTP/1.1\r\nHost: {host}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body)
    await writer.drain()
    return reader, writer


@pytest.mark.timeout(90)
async def test_idle_long_polls_do_not_starve_others(sqlite_url: str, tmp_path: Path) -> None:
    raise_open_files(IDLE * 2 + 1000)
    server = await asyncio.to_thread(start_server, tmp_path, ["--database", sqlite_url,
                                                             "--no-sqs"])
    parked: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    began = time.monotonic()
    try:
        create_queue(server.url, "idle")
        create_queue(server.url, "busy")
        host, port = server.url.removeprefix("http://").split(":")
        for start in range(0, IDLE, 200):
            parked += await asyncio.gather(*(park(host, int(port), "idle")
                                             for _ in range(start, min(IDLE, start + 200))))
        # Every poll is parked and has made its first query (2,000 queries in a burst).
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            assert (await client.get("/v1/queues/busy")).status_code == 200
        print(f"parked in {time.monotonic() - began:.1f} s")
        await asyncio.sleep(1.0)

        worst = 0.0
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for n in range(20):
                began = time.monotonic()
                sent = await client.post("/v1/queues/busy/messages",
                                         json={"messages": [{"body": f"m{n}"}]})
                got = await client.post("/v1/queues/busy/messages/receive",
                                        json={"max_messages": 1})
                worst = max(worst, time.monotonic() - began)
                assert sent.status_code == 201 and got.status_code == 200
                assert [m["body"] for m in got.json()["messages"]] == [f"m{n}"]
            # A message for the parked queue reaches one of the parked polls promptly.
            began = time.monotonic()
            await client.post("/v1/queues/idle/messages", json={"messages": [{"body": "hi"}]})
        readers = [asyncio.create_task(r.readuntil(b'"hi"')) for r, _ in parked]
        done, pending = await asyncio.wait(readers, timeout=10,
                                           return_when=asyncio.FIRST_COMPLETED)
        woke = time.monotonic() - began
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        print(f"{IDLE} parked long polls: worst send+receive {worst * 1000:.0f} ms, "
              f"a parked poll got its message in {woke * 1000:.0f} ms")
        assert done, "no parked long poll received the message"
        assert worst < 1.0, worst
        assert woke < 3.0, woke
    finally:
        ended = time.monotonic()
        for _, writer in parked:
            writer.close()
        await asyncio.to_thread(server.stop)
        print(f"stopped in {time.monotonic() - ended:.1f} s")
