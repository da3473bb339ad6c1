"""The cost of receiving and acknowledging plain messages on a queue with a dead-letter
queue (maxReceiveCount set, as every worker queue has), this tree against another.

    python benchmarks/receive_cost.py --baseline-src DIR [--messages 20000] [--rounds 3]
                                      [--postgres URL] [--skip-sqlite]

Each round runs, one after the other and alternating which goes first, a child process
per tree (`PYTHONPATH=<tree>/src`) that fills a fresh queue with `--messages` messages,
then receives them 100 at a time and deletes each batch, through `Broker`. It prints the
child's CPU seconds (its own, not the server's) and wall seconds per 1,000 messages, and
the same-run ratio to the baseline tree. CPU seconds are steadier than wall time on a
shared machine; the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _child(url: str, messages: int) -> dict[str, float]:
    from conveyor.broker.broker import Broker
    from conveyor.models import Body, SendEntry
    from conveyor.storage.factory import storage_from_url

    broker = Broker(storage_from_url(url), sweep_interval=None)
    await broker.start()
    try:
        await broker.create_queue("bench-dlq")
        await broker.create_queue("bench", {"dead_letter_queue": "bench-dlq",
                                            "max_receive_count": 4})
        for start in range(0, messages, 1000):
            await broker.send("bench", [SendEntry(Body(f"m{i}"))
                                        for i in range(start, min(messages, start + 1000))])
        cpu, wall, got = time.process_time(), time.perf_counter(), 0
        while got < messages:
            batch = await broker.receive("bench", 100, 60)
            if not batch:
                break
            got += len(batch)
            await broker.delete("bench", [m.receipt_handle for m in batch])
        return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
                "received": got}
    finally:
        await broker.close()


def _run(src: Path, url: str, messages: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE.parent}"}
    out = subprocess.run([sys.executable, __file__, "--child", url, str(messages)],
                         env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _database(kind: str, pg: str, directory: str) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{directory}/{uuid.uuid4().hex}.db", None
    import asyncpg

    name = f"conveyor_recv_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(pg)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
    asyncio.run(create())
    return pg.rsplit("/", 1)[0] + f"/{name}", name


def _drop(pg: str, name: str | None) -> None:
    if name is None:
        return
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(pg)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    asyncio.run(drop())


def main() -> None:
    """Parse the arguments; run the rounds; print the table."""
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(asyncio.run(_child(sys.argv[2], int(sys.argv[3])))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, required=True)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=DEFAULT_PG)
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    trees = {"this": HERE.parent / "src", "base": args.baseline_src.resolve()}
    kinds = ["postgresql"] + ([] if args.skip_sqlite else ["sqlite"])
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for r in range(args.rounds):
            for kind in kinds:
                order = list(trees) if r % 2 == 0 else list(reversed(trees))
                for tree in order:
                    url, name = _database(kind, args.postgres, directory)
                    try:
                        got = _run(trees[tree], url, args.messages)
                    finally:
                        _drop(args.postgres, name)
                    results.setdefault((tree, kind), []).append(got)
                    print(f"  round {r + 1}: {tree} {kind}: cpu {got['cpu']:.2f} s, "
                          f"wall {got['wall']:.2f} s", flush=True)
    load = os.getloadavg()[0]
    print(f"\n{args.messages:,} messages received and deleted, 100 a call; median of "
          f"{args.rounds} rounds; load average {load:.2f}\n")
    print(f"{'tree':6} {'database':11} {'cpu ms/1k':>10} {'÷base':>6} {'wall ms/1k':>11} "
          f"{'÷base':>6}")
    for kind in kinds:
        base_cpu = statistics.median(g["cpu"] for g in results[("base", kind)])
        base_wall = statistics.median(g["wall"] for g in results[("base", kind)])
        for tree in trees:
            cpu = statistics.median(g["cpu"] for g in results[(tree, kind)])
            wall = statistics.median(g["wall"] for g in results[(tree, kind)])
            per = 1000 / args.messages * 1000
            print(f"{tree:6} {kind:11} {cpu * per:10.1f} {cpu / base_cpu:6.3f} "
                  f"{wall * per:11.1f} {wall / base_wall:6.3f}")
    print("reproduce: python benchmarks/receive_cost.py --baseline-src "
          f"{args.baseline_src} --messages {args.messages} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
