"""SQLite when the disk fills up or the file turns read-only: clear errors (503, saying
why), no corruption, nothing acknowledged lost, and work goes on once space (or write
access) returns.

A full disk is emulated with a small tmpfs (as root) and with `PRAGMA max_page_count`;
read-only with `PRAGMA query_only` on the live connection and, at start, with a file the
server's user (`nobody`) cannot write, since root ignores file permissions.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.broker.broker import Broker
from conveyor.errors import StorageError, StorageUnavailable
from conveyor.models import Body, SendEntry
from conveyor.storage.factory import storage_from_url
from tests.http.server import conveyor_command

BODY = "x" * 2000


async def fill(broker: Broker, queue: str, sent: list[str]) -> StorageError:
    """Send batches until the storage refuses; the acknowledged ids go to `sent`."""
    for n in range(100_000):
        try:
            results = await broker.send(queue, [SendEntry(Body(f"{n}-{i}-{BODY}"))
                                                for i in range(50)])
        except StorageError as exc:
            return exc
        sent.extend(r.id for r in results)
    raise AssertionError("the storage never filled up")


async def drain_ids(broker: Broker, queue: str) -> list[str]:
    got: list[str] = []
    while batch := await broker.receive(queue, 1000, visibility_timeout=300):
        got.extend(m.id for m in batch)
        results = await broker.delete(queue, [m.receipt_handle for m in batch])
        assert all(r.ok for r in results), results
    return got


def integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


async def check_full_then_recover(broker: Broker, path: Path, make_room: object) -> None:
    await broker.create_queue("full")
    sent: list[str] = []
    error = await fill(broker, "full", sent)
    assert isinstance(error, StorageUnavailable), error
    assert "full" in error.message, error.message
    assert sent, "nothing was accepted before the disk filled"
    # Still readable; a receive or an ack may need room too (the WAL grows), and then
    # says so.
    stats = await broker.queue_stats("full")
    assert stats.visible == len(sent)
    try:
        batch = await broker.receive("full", 10, visibility_timeout=300)
    except StorageUnavailable as exc:
        assert "full" in exc.message
        batch = []
    handles = [m.receipt_handle for m in batch]
    try:
        acked = await broker.delete("full", handles) if handles else []
    except StorageUnavailable as exc:
        assert "full" in exc.message
        acked = []
    make_room()  # type: ignore[operator]
    if not acked:
        acked = await broker.delete("full", handles) if handles else []
    assert all(r.ok for r in acked), acked
    more = await broker.send("full", [SendEntry(Body("after")) for _ in range(100)])
    left = await drain_ids(broker, "full")
    assert sorted(left) == sorted({*sent, *(r.id for r in more)} - {m.id for m in batch})
    assert integrity(path) == "ok"


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_disk_full_on_a_tiny_tmpfs(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "disk", "2m") as disk:
        path = disk / "conveyor.db"
        broker = Broker(storage_from_url(f"sqlite:///{path}"), sweep_interval=None)
        await broker.start()
        try:
            def grow() -> None:
                subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)

            await check_full_then_recover(broker, path, grow)
        finally:
            await broker.close()
        assert integrity(path) == "ok"


async def test_disk_full_by_max_page_count(sqlite_url: str) -> None:
    broker = Broker(storage_from_url(sqlite_url), sweep_interval=None)
    await broker.start()
    storage = broker.storage
    pages = await storage._run(  # type: ignore[attr-defined]
        lambda db: db.execute("PRAGMA page_count").fetchone()[0])

    def limit(n: int) -> None:
        storage._call(lambda db: db.execute(f"PRAGMA max_page_count = {n}"))  # type: ignore[attr-defined]

    limit(pages + 300)
    try:
        await check_full_then_recover(broker, Path(sqlite_url.removeprefix("sqlite:///")),
                                      lambda: limit(1_000_000_000))
    finally:
        await broker.close()


async def test_read_only_while_running(sqlite_url: str) -> None:
    broker = Broker(storage_from_url(sqlite_url), sweep_interval=None)
    await broker.start()
    storage = broker.storage
    try:
        await broker.create_queue("ro")
        sent = [r.id for r in await broker.send("ro", [SendEntry(Body("a"))] * 5)]
        storage._call(lambda db: db.execute("PRAGMA query_only = ON"))  # type: ignore[attr-defined]
        with pytest.raises(StorageUnavailable, match=r"read-?only"):
            await broker.send("ro", [SendEntry(Body("refused"))])
        with pytest.raises(StorageUnavailable, match=r"read-?only"):
            await broker.receive("ro", 1)
        assert (await broker.queue_stats("ro")).visible == 5  # reads go on
        storage._call(lambda db: db.execute("PRAGMA query_only = OFF"))  # type: ignore[attr-defined]
        sent += [r.id for r in await broker.send("ro", [SendEntry(Body("b"))])]
        assert sorted(await drain_ids(broker, "ro")) == sorted(sent)
    finally:
        await broker.close()


def test_serve_on_a_read_only_mount(tmp_path: Path) -> None:
    """A data directory mounted read-only (root ignores permissions, not a ro mount)."""
    data = tmp_path / "data"
    data.mkdir()
    path = data / "conveyor.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE t (x)")
    view = tmp_path / "ro"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(data), str(view)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        done = subprocess.run(
            [*conveyor_command(), "serve", "--port", "0", "--no-sqs",
             "--database", f"sqlite:///{view}/conveyor.db"], capture_output=True, text=True,
            timeout=60, env=env)
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
    said = done.stderr + done.stdout
    assert done.returncode != 0, said
    assert "Traceback" not in said, said
    assert f"{view}/conveyor.db" in said and "readonly" in said.replace("read-only",
                                                                          "readonly"), said
    assert integrity(path) == "ok"
