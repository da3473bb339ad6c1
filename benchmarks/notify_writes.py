"""Database writes and CPU per notification on the notification path, without a provider.

A notifier enqueues N emails (the demo's chunks of 5,000), then one in-process delivery
worker (the demo's lanes and envelopes) delivers them through a channel that accepts every
message at once. Counted per notification, for the enqueue and the delivery apart:
transactions that write (SQLite: `BEGIN IMMEDIATE`), hops to the storage thread (SQLite)
or statements sent (PostgreSQL: round trips), and CPU microseconds of this process (on
PostgreSQL the server's CPU is not in it). A/B against another checkout:

    PYTHONPATH=/tmp/base/src .venv/bin/python benchmarks/notify_writes.py --messages 20000
    .venv/bin/python benchmarks/notify_writes.py --messages 20000
    .venv/bin/python benchmarks/notify_writes.py --postgres postgresql://postgres@127.0.0.1/x
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from conveyor.notify import DeliveryOptions, Email, Notifier
from conveyor.notify.channel import Channel
from conveyor.notify.models import Item
from conveyor.notify.outcomes import Result
from conveyor.storage.sqlite.sqlite_base import SqliteBase

COUNTS = {"writes": 0, "calls": 0}


class Instant(Channel):
    """Accepts everything at once."""

    batch_size = 100

    def render(self, item: Item) -> Any:
        return item.id

    async def send_many(self, items: Sequence[Item], payloads: Sequence[Any]) -> list[Result]:
        return [Result.sent(p) for p in payloads]


def _count() -> None:
    original_write = SqliteBase.__dict__["_write"].__func__
    original_run = SqliteBase._run

    def write(db: sqlite3.Connection) -> Any:
        COUNTS["writes"] += 1
        return original_write(db)

    async def run(self: Any, fn: Any) -> Any:
        COUNTS["calls"] += 1
        return await original_run(self, fn)

    SqliteBase._write = staticmethod(write)  # type: ignore[method-assign,assignment]
    SqliteBase._run = run  # type: ignore[method-assign]
    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        original = getattr(asyncpg.Connection, name)

        def counted(self: Any, query: str, *args: Any, _original: Any = original,
                    **kwargs: Any) -> Any:
            COUNTS["calls"] += 1
            return _original(self, query, *args, **kwargs)

        setattr(asyncpg.Connection, name, counted)


async def main(url: str, messages: int) -> None:
    options = DeliveryOptions(lanes=3, envelopes=2, wait_seconds=0, visibility_timeout=300)
    notifier = Notifier(url, channels={"email": Instant()},
                        templates={"t.txt": "hello {{ n }}"})
    async with notifier:
        await notifier.deliverer(options).ensure_queues()
        notes = [Email(to=f"u{i}@example.com", template="t", data={"n": i})
                 for i in range(messages)]
        _count()
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, messages, 5000):
            await notifier.asend_many(notes[start:start + 5000])
        phases = [("enqueue", time.process_time() - cpu, time.perf_counter() - wall,
                   dict(COUNTS))]
        COUNTS.update(writes=0, calls=0)
        deliverer = notifier.deliverer(options)
        cpu, wall = time.process_time(), time.perf_counter()
        task = asyncio.create_task(deliverer.run())
        async with asyncio.timeout(600):
            while deliverer.stats.sent < messages:  # noqa: ASYNC110 (a benchmark's poll)
                await asyncio.sleep(0.01)
        deliverer.stop()
        await task
        phases.append(("deliver", time.process_time() - cpu, time.perf_counter() - wall,
                       dict(COUNTS)))
    load = os.getloadavg()
    for name, cpu_s, wall_s, counts in phases:
        print(f"{name:8} {cpu_s / messages * 1e6:7.1f} CPU-us/msg  "
              f"{counts['writes'] / messages * 1000:6.2f} write tx/1k  "
              f"{counts['calls'] / messages * 1000:6.2f} calls/1k  "
              f"wall {wall_s:5.1f} s  load {load[0]:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main(args.postgres or f"sqlite:///{folder}/bench.db", args.messages))
