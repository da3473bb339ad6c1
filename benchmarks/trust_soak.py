"""Soak of the fault tests: `kill -9` of `conveyor serve` many times under a bounded load of
sends, receives and deletes (loopback only), then a drain and the reconciliation: sends
acknowledged, deliveries, messages left at the faults, lost (must be 0), duplicates after
an acknowledged delete (must be 0).

    python benchmarks/trust_soak.py                          # SQLite file, 10 kills
    python benchmarks/trust_soak.py --kills 30 --every 2000
    python benchmarks/trust_soak.py --database postgresql://postgres@127.0.0.1/soak

The load stops by itself after --max-sends messages or --seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.load import Load, create_queue, drain, reconcile
from tests.http.server import start_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--every", type=int, default=1000,
                        help="acknowledged sends between kills")
    parser.add_argument("--max-sends", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=300.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-soak-"))
    database = args.database or f"sqlite:///{workdir}/soak.db"
    server = start_server(workdir, ["--database", database, "--no-sqs"])
    create_queue(server.url, "soak")
    load = Load(server.url, "soak", max_sends=args.max_sends, seconds=args.seconds).start()
    began = time.monotonic()
    try:
        for kill in range(args.kills):
            target = load.sent() + args.every
            deadline = time.monotonic() + 60
            while load.sent() < target and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
            server = start_server(workdir, ["--database", database, "--no-sqs"])
            load.base = server.url
            print(f"kill {kill + 1}/{args.kills}: {load.sent()} sends acknowledged",
                  flush=True)
        ledger = load.stop()
        drained = drain(server.url, "soak", ledger, seconds=120)
    finally:
        load.stop()
        server.stop()
    report = reconcile(ledger, drained)
    elapsed = time.monotonic() - began
    print(f"\n{args.kills} kills in {elapsed:.1f} s on {database.split(':')[0]}")
    for field in ("acknowledged_sends", "delivered", "in_flight_at_fault", "lost",
                  "duplicates_after_ack", "acked_delete_came_back", "phantoms",
                  "drained_twice"):
        print(f"  {field:<24} {getattr(report, field):>10}")
    print(f"  client errors            {dict(ledger.errors)}")
    report.check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
