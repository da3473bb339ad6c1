"""Recipient import rate: `broker.recipients.import_lines` (what `conveyor recipient import`
runs) on SQLite and PostgreSQL, against parsing the same lines without storing them.

    python benchmarks/recipients.py --count 100000 --postgres postgresql://postgres@127.0.0.1

Each line: a time zone, two email addresses, an FCM token, a preference and quiet hours
(as the million-recipient demo of issue 14 would hold). Figures depend on the machine and
its load; give the same-run ratio to the parse-only baseline with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import asyncpg

from conveyor.broker.broker import Broker
from conveyor.recipients import parse_line
from conveyor.storage.factory import storage_from_url

ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney")


def lines(count: int) -> list[str]:
    """`count` JSON lines."""
    return [json.dumps({
        "id": f"user-{i}", "timezone": ZONES[i % len(ZONES)], "locale": "en",
        "addresses": {"email": [f"u{i}@example.com", f"u{i}@work.example"],
                      "fcm": [f"fcm-token-{i:012d}"]},
        "preferences": {"marketing": {"email": i % 10 != 0}},
        "quiet_hours": {"start": "22:00", "end": "07:00"}}) for i in range(count)]


async def store(url: str, data: list[str], batch: int) -> float:
    """Seconds to import `data` into a fresh database at `url`."""
    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        started = time.perf_counter()
        done = await broker.recipients.import_lines(data, batch=batch)
        seconds = time.perf_counter() - started
        assert done == len(data) == await broker.recipients.count()
    return seconds


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--postgres", help="a server URL; a scratch database is made there")
    args = parser.parse_args()
    data = lines(args.count)
    started = time.perf_counter()
    for line in data:
        parse_line(line)
    parse = time.perf_counter() - started
    print(f"parse only:  {args.count / parse:>9,.0f} recipients/s")
    with tempfile.TemporaryDirectory() as folder:
        seconds = await store(f"sqlite:///{Path(folder) / 'r.db'}", data, args.batch)
        print(f"sqlite:      {args.count / seconds:>9,.0f} recipients/s "
              f"({seconds / parse:.2f}x the parse-only time)")
    if args.postgres:
        name = f"conveyor_bench_recipients_{int(time.time())}"
        admin = await asyncpg.connect(args.postgres)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
            seconds = await store(url, data, args.batch)
            print(f"postgres:    {args.count / seconds:>9,.0f} recipients/s "
                  f"({seconds / parse:.2f}x the parse-only time)")
        finally:
            await admin.execute(f'DROP DATABASE "{name}"')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
