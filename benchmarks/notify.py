"""Notification delivery benchmarks.

1. SMTP clients into Postfix's smtp-sink (no dump): aiosmtplib vs our RFC 2920 pipelined
   client, same connections and messages — does pipelining pay for itself?
2. The demo (`conveyor demo`) on SQLite and, with --postgres URL, on PostgreSQL.

    python benchmarks/notify.py --smtp-only
    python benchmarks/notify.py --messages 1000000 --postgres postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import time

from conveyor.demo import DemoConfig, run_demo
from conveyor.demo.peers import _libs, find_smtp_sink
from conveyor.notify.smtp import _PlainConnection
from conveyor.notify.smtp_pipeline import PipelinedConnection


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _clients(port: int, pipelined: bool, connections: int, per: int) -> float:
    from conveyor.notify import SmtpChannel

    channel = SmtpChannel("127.0.0.1", port, pipelining=pipelined)
    conns = [PipelinedConnection("127.0.0.1", port) if pipelined else _PlainConnection(channel)
             for _ in range(connections)]
    await asyncio.gather(*(c.connect() for c in conns))
    body = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\r\n\r\n"
            + b"x" * 400 + b"\r\n")
    messages = [("a@example.com", f"user{i}@example.com", body) for i in range(per)]
    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(c.send_many(messages) for c in conns))
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    for c in conns:
        await c.close()
    n = connections * per
    print(f"  {'pipelined' if pipelined else 'aiosmtplib':>10}: {n / wall:8,.0f} msg/s, "
          f"client CPU {cpu / n * 1e6:5.1f} us/msg ({connections} connections)")
    return n / wall


def smtp_clients() -> None:
    """Both clients into smtp-sink, counting only and dumping every message (-D, as the
    demo runs it), uvloop, the same connections and messages."""
    import tempfile

    import uvloop

    binary = find_smtp_sink()
    if binary is None:
        print("smtp-sink not found: see scripts/get-smtp-sink")
        return
    for dump in (False, True):
        port = _port()
        folder = tempfile.mkdtemp(prefix="conveyor-bench-")
        os.chmod(folder, 0o777)
        target = os.path.join(folder, "dump")
        with open(target, "w"):  # smtp-sink drops to nobody before it opens the dump
            pass
        os.chmod(target, 0o666)
        args = [binary] + (["-u", "nobody"] if os.geteuid() == 0 else []) + (
            ["-D", target] if dump else []) + [f"127.0.0.1:{port}", "1024"]
        sink = subprocess.Popen(args, env=_libs(binary))
        time.sleep(0.3)
        try:
            print(f"SMTP clients into smtp-sink ({'dumping' if dump else 'counting'}):")
            for pipelined in (False, True):
                for connections in (4, 16):
                    uvloop.run(_clients(port, pipelined, connections, 8000 // connections))
        finally:
            sink.kill()
            sink.wait()
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--smtp-only", action="store_true")
    args = parser.parse_args()
    smtp_clients()
    if args.smtp_only:
        return
    run_demo(DemoConfig(messages=args.messages, progress=False))
    if args.postgres:
        run_demo(DemoConfig(messages=args.messages, database=args.postgres, progress=False))


if __name__ == "__main__":
    main()
