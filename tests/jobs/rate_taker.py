"""A process that takes rate-limit tokens as fast as it is allowed, for the cross-process test.

`python -m tests.jobs.rate_taker URL KEY RATE PER CHUNK` opens its own broker (time from the
database, as in production), prints `ready`, reads `START_AT STOP_AT` (epoch seconds) from
stdin, waits for START_AT, then takes CHUNK tokens at a time until STOP_AT, sleeping
`retry_after` whenever it got fewer than it asked for. Prints one JSON line: [[time,
granted], ...] of every non-empty grant.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson

from conveyor.broker.broker import Broker
from conveyor.storage.factory import storage_from_url


async def main(url: str, key: str, rate: int, per: float, chunk: int) -> None:
    grants: list[tuple[float, int]] = []
    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        start_at, stop_at = map(float, (await asyncio.to_thread(sys.stdin.readline)).split())
        await asyncio.sleep(max(0.0, start_at - time.time()))
        while time.time() < stop_at:
            grant = await broker.limits.take(key, rate, per, want=chunk)
            if grant.granted:
                grants.append((time.time(), grant.granted))
            if grant.granted < chunk:
                await asyncio.sleep(max(grant.retry_after, 0.001))
    sys.stdout.write(orjson.dumps(grants).decode() + "\n")


if __name__ == "__main__":
    url, key, rate, per, chunk = sys.argv[1:6]
    asyncio.run(main(url, key, int(rate), float(per), int(chunk)))
