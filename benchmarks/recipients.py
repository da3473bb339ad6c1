"""Recipient import rate: `broker.recipients.import_lines` (what `conveyor recipient import`
runs) on SQLite and PostgreSQL, against parsing the same lines without storing them; and
the cost of notifying a person (`notify_recipient`: recipient read, preferences,
suppression look-up, quiet hours, link) against the plain path (`Notifier.asend` of the
same email), one request at a time, on SQLite.

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
from conveyor.notify import Channel, Email, Notifier
from conveyor.notify.people import PersonNotification, notify_recipient
from conveyor.recipients import Category, parse_line
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


async def notify_cost(url: str, count: int) -> tuple[float, float]:
    """Seconds per notification: (plain `asend`, `notify_recipient`), same recipients."""
    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        await broker.recipients.import_lines(lines(count))
        notifier = Notifier(broker, channels={"email": Channel()},
                            templates={"hello.txt": "hi"})
        await notifier.asend(Email(to="warm@example.com", template="hello"))
        started = time.perf_counter()
        for i in range(count):
            await notifier.asend(Email(to=f"u{i}@example.com", template="hello",
                                       data={"n": 1}))
        plain = (time.perf_counter() - started) / count
        started = time.perf_counter()
        for i in range(count):
            await notify_recipient(notifier, PersonNotification(
                f"user-{i}", Category("news"), "hello", {"n": 2}, channels=["email"]))
        person = (time.perf_counter() - started) / count
    return plain, person


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--postgres", help="a server URL; a scratch database is made there")
    parser.add_argument("--notify", type=int, default=2000,
                        help="people notified one request at a time (0: skip)")
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
        if args.notify:
            plain, person = await notify_cost(f"sqlite:///{Path(folder) / 'n.db'}",
                                              args.notify)
            # Each person has two email addresses: one request makes two notifications.
            print(f"notify one request at a time (sqlite): plain asend {plain * 1000:.2f} ms "
                  f"per notification; notify_recipient {person * 1000:.2f} ms per person = "
                  f"{person * 500:.2f} ms per notification ({person / 2 / plain:.2f}x)")
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
