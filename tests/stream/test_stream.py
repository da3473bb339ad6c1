"""The WebSocket stream through a real `conveyor serve`: credits, pushes, acks, nacks,
disconnects, errors; with the `conveyor.client.stream.Stream` helper and raw frames."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from conveyor.client.stream import Stream
from conveyor.errors import QueueNotFound
from tests.http.server import ServerProcess, start_server
from tests.support.waiting import until_server_waiting

_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = Path(tmp_path_factory.mktemp("stream"))
    process = start_server(directory, ["--database", f"sqlite:///{directory}/c.db", "--no-sqs"])
    yield process
    assert process.stop() == 0, process.logs()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
def queue(api: httpx.Client) -> str:
    name = f"s{next(_names)}"
    assert api.post("/v1/queues", json={"name": name}).status_code == 201
    return name


def _send(api: httpx.Client, queue: str, count: int) -> None:
    bodies = [{"body": {"n": i}} for i in range(count)]
    assert api.post(f"/v1/queues/{queue}/messages", json={"messages": bodies}).is_success


def _stats(api: httpx.Client, queue: str) -> dict[str, int]:
    stats: dict[str, int] = api.get(f"/v1/queues/{queue}").json()["stats"]
    return stats


async def test_credits_bound_what_is_pushed(server: ServerProcess, api: httpx.Client,
                                            queue: str) -> None:
    _send(api, queue, 10)
    async with Stream(server.url, queue, credits=3, auto_credit=False) as stream:
        got = [await stream.receive(5) for _ in range(3)]
        with pytest.raises(TimeoutError):
            await stream.receive(0.5)
        assert _stats(api, queue)["in_flight"] == 3
        await stream.grant(2)
        got += [await stream.receive(5) for _ in range(2)]
        with pytest.raises(TimeoutError):
            await stream.receive(0.5)
        assert _stats(api, queue) | {"oldest_age_seconds": 0} == {
            "visible": 5, "in_flight": 5, "delayed": 0, "dead_letters": 0,
            "oldest_age_seconds": 0}
        assert len({m.id for m in got}) == 5
        assert all(m.receive_count == 1 and m.queue == queue for m in got)


async def test_messages_are_pushed_as_they_arrive(server: ServerProcess, api: httpx.Client,
                                                  queue: str) -> None:
    async with Stream(server.url, queue, credits=5) as stream:
        await until_server_waiting(server.url, 1)  # the server is now in its long poll
        started = time.monotonic()
        await asyncio.to_thread(_send, api, queue, 1)
        message = await stream.receive(5)
        assert message.body.value() == {"n": 0}
        assert time.monotonic() - started < 0.9  # woken by the send, not a 1 s poll


async def test_ack_and_nack_over_the_socket(server: ServerProcess, api: httpx.Client,
                                            queue: str) -> None:
    _send(api, queue, 3)
    async with Stream(server.url, queue, credits=3, auto_credit=False) as stream:
        a, b, c = [await stream.receive(5) for _ in range(3)]
        [result] = await stream.ack(a)
        assert result.ok
        [again] = await stream.ack(a.receipt_handle)
        assert again.status == "stale"
        [junk] = await stream.ack("not-a-handle")
        assert junk.status == "invalid"
        [released] = await stream.nack(b)
        assert released.ok
        assert _stats(api, queue)["visible"] == 1
        assert _stats(api, queue)["in_flight"] == 1
        await stream.grant(1)
        redelivered = await stream.receive(5)
        assert redelivered.id == b.id and redelivered.receive_count == 2
        assert [r.ok for r in await stream.ack(c, redelivered)] == [True, True]
    assert _stats(api, queue)["visible"] + _stats(api, queue)["in_flight"] == 0


async def test_auto_credit_keeps_at_most_the_grant_in_flight(
        server: ServerProcess, api: httpx.Client, queue: str) -> None:
    _send(api, queue, 7)
    seen: list[int] = []
    async with Stream(server.url, queue, credits=2) as stream:
        async for message in stream:
            assert _stats(api, queue)["in_flight"] <= 2
            seen.append(message.body.value()["n"])
            await stream.ack(message)
            if len(seen) == 7:
                break
    assert sorted(seen) == list(range(7))


async def test_a_dropped_connection_leaves_leases_to_lapse(
        server: ServerProcess, api: httpx.Client, queue: str) -> None:
    _send(api, queue, 2)
    async with Stream(server.url, queue, credits=2, visibility_timeout=1) as stream:
        first = [await stream.receive(5) for _ in range(2)]
    assert _stats(api, queue)["in_flight"] == 2  # closed without acking: still leased
    await asyncio.sleep(1.3)
    assert _stats(api, queue)["visible"] == 2
    async with Stream(server.url, queue, credits=2) as stream:
        second = [await stream.receive(5) for _ in range(2)]
        assert {m.id for m in second} == {m.id for m in first}
        assert {m.receive_count for m in second} == {2}
        await stream.ack(*second)


async def test_unknown_queue_ends_the_stream(server: ServerProcess) -> None:
    async with Stream(server.url, "no-such-queue") as stream:
        with pytest.raises(QueueNotFound):
            async for _ in stream:
                pass


async def test_bad_frames_get_error_frames(server: ServerProcess, queue: str) -> None:
    url = server.url.replace("http://", "ws://") + f"/v1/queues/{queue}/stream"
    async with connect(url) as socket:
        await socket.send("not json")
        assert json.loads(await socket.recv())["error"]["code"] == "malformed_json"
        await socket.send(b"\x00\xff")  # binary: an error frame, and the stream goes on
        assert json.loads(await socket.recv())["error"]["code"] == "malformed_json"
        await socket.send(json.dumps({"type": "credit", "credits": 0, "id": 7}))
        frame = json.loads(await socket.recv())
        assert frame["type"] == "error" and frame["id"] == 7
        await socket.send(json.dumps({"type": "ack", "receipt_handles": "x", "id": 8}))
        assert json.loads(await socket.recv())["id"] == 8
        await socket.send(json.dumps({"type": "dance", "id": 9}))
        assert json.loads(await socket.recv())["error"]["code"] == "invalid_input"
    for bad in (url + "?visibility_timeout=99999", url + "?visibility_timeout=abc"):
        async with connect(bad) as socket:
            assert json.loads(await socket.recv())["error"]["code"] == "invalid_input"
            await socket.wait_closed()
            assert socket.close_code == 4400
