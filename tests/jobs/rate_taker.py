"""A process that takes rate-limit tokens as fast as it is allowed, for the cross-process test.

`python -m tests.jobs.rate_taker URL KEY RATE PER CHUNK START_AT STOP_AT` opens its own broker
(time from the database, as in production), waits for START_AT (epoch seconds), then takes
CHUNK tokens at a time until STOP_AT, sleeping `retry_after` whenever it got fewer than it
asked for. Prints one JSON line: [[time, granted], ...] of every non-empty grant.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson

from conveyor.broker.broker import Broker
from conveyor.storage.factory import storage_from_url


async def main(url: str, key: str, rate: int, per: float, chunk: int, start_at: float,
               stop_at: float) -> None:
    grants: list[tuple[float, int]] = []
    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        while time.time() < stop_at:
            grant = await broker.limits.take(key, rate, per, want=chunk)
            if grant.granted:
                grants.append((time.time(), grant.granted))
            if grant.granted < chunk:
                await asyncio.sleep(max(grant.retry_after, 0.001))
    sys.stdout.write(orjson.dumps(grants).decode() + "\n")


if __name__ == "__main__":
    url, key, rate, per, chunk, start_at, stop_at = sys.argv[1:8]
    asyncio.run(main(url, key, int(rate), float(per), int(chunk), float(start_at),
                     float(stop_at)))
