"""PostgreSQL: main's claim function (migration 0022) against 0023's `claim_v2` (which
leaves over-received flow nodes for the storage), on plain messages.

    python benchmarks/claim_statement.py [--postgres URL] [--rounds 1500]

Fills a queue (with a DLQ, max_receive_count 4) with 20,000 messages in a fresh database,
prepares both calls on one connection and runs each `--rounds` times, interleaved, each in
a transaction rolled back (the queue never changes), 100 messages a claim. Prints the
median and quartiles of each and the same-run ratio, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid

import asyncpg

from conveyor.broker.broker import Broker
from conveyor.models import Body, SendEntry
from conveyor.storage.factory import storage_from_url


async def main(pg: str, rounds: int) -> None:
    """Fill, run interleaved, print."""
    name = f"conveyor_claim_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = pg.rsplit("/", 1)[0] + f"/{name}"
    try:
        await _measure(url, rounds)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _measure(url: str, rounds: int) -> None:
    b = Broker(storage_from_url(url), sweep_interval=None)
    await b.start()
    await b.create_queue("d")
    await b.create_queue("q", {"dead_letter_queue": "d", "max_receive_count": 4})
    for _ in range(20):
        await b.send("q", [SendEntry(Body(f"m{i}")) for i in range(1000)])
    q, d = (await b.queue("q")).id, (await b.queue("d")).id
    await b.close()
    conn = await asyncpg.connect(url)
    call = "SELECT * FROM conveyor_messages_{}($1, $2, $3, $4, $5, $6, '{{}}')"
    ps = {"main claim": await conn.prepare(call.format("claim")),
          "claim_v2": await conn.prepare(call.format("claim_v2"))}
    tot = {k: [] for k in ps}
    for i in range(rounds):
        for k in (list(ps) if i % 2 else list(reversed(list(ps)))):
            await conn.execute("BEGIN")
            t = time.perf_counter()
            got = await ps[k].fetch(q, 100, 30000, 4, d, None)
            tot[k].append(time.perf_counter() - t)
            if len(got) != 100:
                raise SystemExit(f"{k} claimed {len(got)}, not 100")
            await conn.execute("ROLLBACK")
    for k, v in tot.items():
        qs = statistics.quantiles(v, n=4)
        print(f"{k:11} median {statistics.median(v) * 1000:.3f} ms  "
              f"p25 {qs[0] * 1000:.3f} ms  p75 {qs[2] * 1000:.3f} ms")
    m = statistics.median(tot["claim_v2"]) / statistics.median(tot["main claim"])
    print(f"ratio v2/main (median) {m:.3f}; load average {os.getloadavg()[0]:.2f}")
    print(f"reproduce: python benchmarks/claim_statement.py --rounds {rounds}")
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=1500)
    args = parser.parse_args()
    asyncio.run(main(args.postgres, args.rounds))
    sys.exit(0)
