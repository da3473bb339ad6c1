"""SQLite wake-ups between processes travel over Unix datagram sockets (sqlite_wake.py).

Every poll is switched off here (the storage's fallback poll of the file and the broker's
readiness checks wait an hour), so a long poll that returns with the message was woken by
the datagram of the sending process and by nothing else.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from conveyor.broker.broker import Broker
from conveyor.storage.sqlite import sqlite_wake
from conveyor.storage.sqlite.sqlite_storage import SqliteStorage
from tests.support.messages import bodies, entry
from tests.support.waiting import until_waiting

pytestmark = pytest.mark.skipif(not sqlite_wake.available(), reason="no Unix sockets")

HOUR = 3600.0

SENDER = textwrap.dedent("""
    import asyncio, sys
    from conveyor.broker.broker import Broker
    from conveyor.models import Body, SendEntry
    from conveyor.storage.sqlite.sqlite_storage import SqliteStorage

    async def main() -> None:
        storage = SqliteStorage(sys.argv[1], poll_interval=3600, fallback_poll_interval=3600)
        async with Broker(storage, sweep_interval=None, poll_interval=3600) as broker:
            await broker.send("q", [SendEntry(Body.of("from another process"))])

    asyncio.run(main())
""")


def quiet_broker(path: Path) -> Broker:
    """A broker on the file whose only wake-up from other processes is the socket."""
    storage = SqliteStorage(str(path), poll_interval=HOUR, fallback_poll_interval=HOUR)
    return Broker(storage, sweep_interval=None, poll_interval=HOUR)


class Heard:
    """What a storage's listener was told, and an event per arrival."""

    def __init__(self) -> None:
        self.queue_ids: list[int | None] = []
        self.arrived = asyncio.Event()

    def __call__(self, queue_id: int | None) -> None:
        self.queue_ids.append(queue_id)
        self.arrived.set()


async def test_a_send_in_another_process_wakes_this_one(tmp_path: Path) -> None:
    path = tmp_path / "wake.db"
    async with quiet_broker(path) as broker:
        queue, _ = await broker.create_queue("q")
        heard = Heard()
        listening = SqliteStorage(str(path), poll_interval=HOUR, fallback_poll_interval=HOUR)
        await listening.open()
        try:
            await listening.listen(heard)
            sender = await asyncio.create_subprocess_exec(
                sys.executable, "-c", SENDER, str(path), env={**os.environ})
            assert await sender.wait() == 0
            # No poll runs for an hour: only the sender's datagram can bring this.
            await heard.arrived.wait()
            assert heard.queue_ids == [queue.id]
        finally:
            await listening.close()
        # And a long poll woken so returns the message (the broker's own path).
        assert bodies(await broker.receive("q")) == ["from another process"]


async def test_a_send_through_another_storage_in_this_process_wakes_a_long_poll(
        tmp_path: Path) -> None:
    path = tmp_path / "wake.db"
    async with quiet_broker(path) as receiver, quiet_broker(path) as sender:
        queue, _ = await receiver.create_queue("q")
        waiting = asyncio.create_task(receiver.receive("q", wait_seconds=20))
        await until_waiting(receiver, 1)
        woken = receiver._wakeups.ticket(queue.id)
        await sender.send("q", [entry("next door")])
        # The receiver's broker polls nothing for an hour: the datagram woke it.
        await woken.wait()
        assert bodies(await waiting) == ["next door"]


async def test_a_socket_nobody_listens_on_is_removed_by_the_next_sender(
        tmp_path: Path) -> None:
    path = tmp_path / "wake.db"
    directory = sqlite_wake.wake_directory(str(path))
    directory.mkdir(mode=0o700, exist_ok=True)
    gone = directory / "999999999-dead"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:
        dead.bind(str(gone))  # bound, then closed: as a killed process leaves it
    assert gone.exists()
    async with quiet_broker(path) as broker:
        await broker.create_queue("q")
        await broker.send("q", [entry("x")])
    assert not gone.exists()


async def test_closing_removes_the_own_socket(tmp_path: Path) -> None:
    path = tmp_path / "wake.db"
    directory = sqlite_wake.wake_directory(str(path))
    async with quiet_broker(path):
        assert len(list(directory.iterdir())) == 1
    assert not directory.exists()  # the last one out removes the directory


async def test_a_datagram_that_is_not_a_queue_id_wakes_every_queue(tmp_path: Path) -> None:
    path = tmp_path / "wake.db"
    heard = Heard()
    listening = SqliteStorage(str(path), poll_interval=HOUR, fallback_poll_interval=HOUR)
    await listening.open()
    try:
        await listening.listen(heard)
        [own] = sqlite_wake.wake_directory(str(path)).iterdir()
        sent = [b"12", "²".encode(), b"1_0", b"-3", b"", b"9" * 64]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stray:
            for datagram in sent:
                stray.sendto(datagram, str(own))
        while len(heard.queue_ids) < len(sent):
            heard.arrived.clear()
            await asyncio.wait_for(heard.arrived.wait(), timeout=10)
        assert heard.queue_ids == [12, None, None, None, None, int("9" * 64)]
    finally:
        await listening.close()
