"""The delivery ledger's writes per notification, as the million-notification demo makes them:
each row put `queued` in batches of 1,000 (the producer), then begun (`sending`) and
finished (`sent`) in chunks of 133 by `--lanes` concurrent lanes.

    python benchmarks/ledger.py [--rows 200000] [--lanes 4] [--backend sqlite|postgresql|both]
                                [--postgres postgresql://postgres@127.0.0.1:5611/postgres]
                                [--baseline-src DIR] [--repeat 2]

Each run is a child process on a fresh database (a new SQLite file; a new PostgreSQL
database), so `--baseline-src DIR` (another tree's `src`, e.g. main's worktree) runs the
same load against that tree's schema and SQL; the two alternate, baseline first on odd
repeats. Printed per run and phase: CPU microseconds per notification (this process, the
storage's thread included; plus the PostgreSQL cluster's processes when the database is
PostgreSQL: give it a cluster of your own, every one of its processes is counted), wall
microseconds per notification, and on PostgreSQL the WAL bytes per notification.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BATCH = 1000
CHUNK = 133
KEEP_MS = 7 * 86_400_000


def _cluster_cpu(pid: int) -> float:
    """CPU seconds of a postmaster and its children (the cluster's processes)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _parent(pid: int) -> int:
    """A process's parent."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    from conveyor.ledger import DeliveryUpdate, NewDelivery
    from conveyor.storage.base import DeliveryPutParams
    from conveyor.storage.factory import storage_from_url

    storage = storage_from_url(args.url)
    await storage.open()
    server_pid = 0
    wal = None
    if args.url.startswith("postgres"):
        pool = storage.pool  # type: ignore[attr-defined]
        backend = int(await pool.fetchval("SELECT pg_backend_pid()"))
        server_pid = _parent(backend)  # the postmaster

        async def wal_now() -> int:
            return int(await pool.fetchval(
                "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')"))
        wal = wal_now
    rows = [NewDelivery(hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest(),
                        "email", f"user{i}@example.com") for i in range(args.rows)]
    out: dict[str, Any] = {}

    async def phase(name: str, run: Any) -> None:
        cpu, server = time.process_time(), _cluster_cpu(server_pid) if server_pid else 0.0
        w0 = await wal() if wal else 0
        start = time.perf_counter()
        await run()
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
        server = (_cluster_cpu(server_pid) - server) if server_pid else 0.0
        n = args.rows
        out[name] = {"cpu_us": round((cpu + server) / n * 1e6, 1),
                     "client_us": round(cpu / n * 1e6, 1),
                     "server_us": round(server / n * 1e6, 1),
                     "wall_us": round(wall / n * 1e6, 1),
                     "wal_b": round(((await wal()) - w0) / n) if wal else None}

    async def put() -> None:
        for start in range(0, len(rows), BATCH):
            await storage.delivery_put_many(DeliveryPutParams(
                rows[start:start + BATCH], "queued", KEEP_MS, None))

    async def lane(mine: list[Any]) -> None:
        for start in range(0, len(mine), CHUNK):
            chunk = mine[start:start + CHUNK]
            await storage.delivery_begin_many(chunk, KEEP_MS, None)
            await storage.delivery_finish_many(
                [DeliveryUpdate(r[0], "sent", None, f"<{r[0]}@mx>") for r in chunk], None)

    async def send() -> None:
        await asyncio.gather(*(lane(rows[k::args.lanes]) for k in range(args.lanes)))

    await phase("put", put)
    await phase("begin+finish", send)
    await storage.close()
    return out


def _run(src: str, backend: str, args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    if backend == "sqlite":
        url = f"sqlite:///{tmp}/{uuid.uuid4().hex}.db"
    else:
        import asyncpg  # a database of its own per run

        name = f"ledgerbench_{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            conn = await asyncpg.connect(args.postgres)
            await conn.execute(f"CREATE DATABASE {name}")
            await conn.close()
        asyncio.run(create())
        url = args.postgres.rsplit("/", 1)[0] + "/" + name
    env = dict(os.environ, PYTHONPATH=src)
    done = subprocess.run([sys.executable, __file__, "--child", url, "--rows",
                           str(args.rows), "--lanes", str(args.lanes)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Run the load on each backend, alternating with the baseline tree when given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5611/postgres")
    parser.add_argument("--baseline-src", help="another tree's src/ to run next to this one")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.url = args.child
        print(json.dumps(asyncio.run(_child(args))))
        return
    print("$", " ".join([Path(sys.executable).name, *sys.argv]), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at start")
    mine = str(Path(__file__).resolve().parent.parent / "src")
    trees = [("this", mine)] + ([("base", args.baseline_src)] if args.baseline_src else [])
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeat):
            for backend in backends:
                for tree, src in (trees if rep % 2 else trees[::-1]):
                    r = _run(src, backend, args, tmp)
                    results.setdefault((backend, tree), []).append(r)
                    print(f"{backend:10} {tree:4} rep {rep + 1}: " + "  ".join(
                        f"{ph} cpu {v['cpu_us']} us (client {v['client_us']}, server "
                        f"{v['server_us']}) wall {v['wall_us']} us"
                        + (f" wal {v['wal_b']} B" if v["wal_b"] is not None else "")
                        for ph, v in r.items()), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    print("median per notification (CPU us, wall us):")
    for (backend, tree), runs in sorted(results.items()):
        line = []
        for ph in runs[0]:
            cpu = sorted(r[ph]["cpu_us"] for r in runs)[len(runs) // 2]
            wall = sorted(r[ph]["wall_us"] for r in runs)[len(runs) // 2]
            line.append(f"{ph} {cpu} / {wall}")
        print(f"  {backend:10} {tree:4} " + "   ".join(line))


if __name__ == "__main__":
    main()
