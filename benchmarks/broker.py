"""Broker throughput and latency, with a raw-SQL ceiling measured in the same run.

Sends N messages (~200-byte JSON) in batches of 1,000, then drains them (receive 1,000 +
delete) with 1 and with 2 processes, for: a raw SQL baseline (PostgreSQL: the fewest
statements doing the same claim/delete on the same schema), the in-process broker on
PostgreSQL and SQLite, and (with --http) the native HTTP API on both. Then idle-to-delivery
latency: 200 messages/s for 10 s into an idle long-polling consumer (on PostgreSQL also
through bare asyncpg, INSERT + NOTIFY -> LISTEN + claim: the same run's ceiling).

    python benchmarks/broker.py                       # everything, 100,000 messages
    python benchmarks/broker.py --messages 1000000 --only pg-broker --processes 2

Every table is created fresh and never analysed, as on a new install. Beside the wall-clock
rates, the drain's CPU time per message is printed: the drainer processes' own (client) and,
on PostgreSQL, that of the server backends serving the benchmark's database (read from
/proc, so only for a server on this machine): steadier than rates on a shared machine.
The latency part also prints the CPU an idle long poll costs (client process, ms per s).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from conveyor import Body, Broker, SendEntry
from conveyor.storage.factory import storage_from_url

PG_ADMIN = os.environ.get("CONVEYOR_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 1000
JSON_HEADERS = {"content-type": "application/json"}
QUEUE = "bench"


def body(i: int) -> dict[str, Any]:
    """A ~200-byte JSON notification."""
    return {"user_id": i, "email": f"user{i}@example.com", "template": "welcome",
            "data": {"name": f"User {i}", "plan": "pro", "locale": "en-GB",
                     "unsubscribe": f"https://example.com/u/{i:012d}"}}


@dataclass
class Row:
    """One line of the results table."""

    name: str
    enqueue: float
    drain: dict[int, float]
    cpu: dict[int, tuple[float, float | None]]  # processes -> (client, server) CPU-s


async def fresh_pg_database() -> str:
    """A new, empty database; returns its URL."""
    name = f"conveyor_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def drop_pg_database(url: str) -> None:
    """Drop a benchmark database."""
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


# ---- broker (in-process) ---------------------------------------------------------------

async def broker_enqueue(url: str, count: int) -> float:
    """Create the queue and send `count` messages in batches; messages/s."""
    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        await broker.create_queue(QUEUE)
        entries = [SendEntry(Body.of(body(i))) for i in range(count)]
        started = time.perf_counter()
        for i in range(0, count, BATCH):
            await broker.send(QUEUE, entries[i:i + BATCH])
        return count / (time.perf_counter() - started)


Finished = Callable[[int], Awaitable[None]]


async def broker_drain_worker(url: str, finished: Finished) -> int:
    """Receive and delete until the queue is empty; returns how many."""
    done = 0
    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        while True:
            messages = await broker.receive(QUEUE, BATCH, visibility_timeout=60)
            if not messages:
                # A short poll may come back empty while rows are locked by the table
                # upkeep moving them between slots (SKIP LOCKED passes over them): the
                # queue is drained when its count says so.
                if (await broker.queue_stats(QUEUE)).visible:
                    continue
                await finished(done)
                return done
            await broker.delete(QUEUE, [m.receipt_handle for m in messages])
            done += len(messages)


# ---- raw SQL ceiling (PostgreSQL) --------------------------------------------------------

# On the same partitioned schema (message slots) a hand-written claim joins its rows back by
# (id, slot), and a delete names the slots its rows are in, as the broker's do (the token
# carries it); no token check (the fewest statements, not the same guarantees).
RAW_CLAIM = """
WITH cand AS (
    SELECT id, slot FROM conveyor_messages
    WHERE queue_id = $1 AND visible_at <= conveyor_now_ms()
    ORDER BY priority DESC, visible_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
UPDATE conveyor_messages m SET visible_at = conveyor_now_ms() + 60000, leased = true,
    token = (random() * 9007199254740991)::bigint, receive_count = m.receive_count + 1
FROM cand WHERE m.id = cand.id AND m.slot = cand.slot
RETURNING m.id, m.slot, m.body"""
RAW_DELETE = """
DELETE FROM conveyor_messages WHERE id = ANY($1::uuid[]) AND slot = ANY($2::smallint[])"""
RAW_INSERT = """
INSERT INTO conveyor_messages (id, queue_id, visible_at, sent_at, body_kind, body)
SELECT u.id, $1, conveyor_now_ms(), conveyor_now_ms(), 1, u.body
FROM unnest($2::uuid[], $3::text[]) AS u(id, body)"""


async def raw_enqueue(url: str, count: int) -> float:
    """The same rows with one bare INSERT per batch; messages/s."""
    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        queue, _ = await broker.create_queue(QUEUE)

    bodies = [orjson.dumps(body(i)).decode() for i in range(count)]
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        for i in range(0, count, BATCH):
            chunk = bodies[i:i + BATCH]
            ids = [str(uuid.uuid4()) for _ in chunk]  # made outside SQL, as the broker does
            await conn.execute(RAW_INSERT, queue.id, ids, chunk)
        return count / (time.perf_counter() - started)
    finally:
        await conn.close()


async def raw_drain_worker(url: str, finished: Finished) -> int:
    """Claim + delete with two bare statements per batch."""
    # The same planner pins and durability the broker's statements carry (as session
    # settings: no round trips), so the ceiling is a fair one: claims commit
    # asynchronously, acknowledgements durably (migration 0027), on a second connection.
    conn = await asyncpg.connect(url, server_settings={
        "enable_sort": "off", "enable_seqscan": "off", "synchronous_commit": "off"})
    acks = await asyncpg.connect(url, server_settings={"enable_seqscan": "off"})
    try:
        queue_id = await conn.fetchval("SELECT id FROM conveyor_queues WHERE name = $1", QUEUE)
        done = 0
        while True:
            rows = await conn.fetch(RAW_CLAIM, queue_id, BATCH)
            if not rows:
                await finished(done)
                return done
            await acks.execute(RAW_DELETE, [r[0] for r in rows], sorted({r[1] for r in rows}))
            done += len(rows)
    finally:
        await conn.close()
        await acks.close()


# ---- HTTP -------------------------------------------------------------------------------

async def http_enqueue(base: str, count: int) -> float:
    """Send through the native HTTP API in batches; messages/s."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        (await client.post("/v1/queues", json={"name": QUEUE})).raise_for_status()
        payloads = [{"messages": [{"body": body(j)} for j in range(i, min(i + BATCH, count))]}
                    for i in range(0, count, BATCH)]
        started = time.perf_counter()
        for payload in payloads:
            # orjson, as conveyor's own client encodes: httpx's json= is the stdlib encoder,
            # whose cost on this shared 2-core machine would be charged to the server.
            (await client.post(f"/v1/queues/{QUEUE}/messages", content=orjson.dumps(payload),
                               headers=JSON_HEADERS)).raise_for_status()
        return count / (time.perf_counter() - started)


async def http_drain_worker(base: str, finished: Finished) -> int:
    """Receive + delete through the native HTTP API."""
    import httpx

    done = 0
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        while True:
            messages = []
            for wait in (0, 1):  # empty only after a long poll too (broker_drain_worker)
                got = await client.post(f"/v1/queues/{QUEUE}/messages/receive",
                                        json={"max_messages": BATCH, "visibility_timeout": 60,
                                              "wait_seconds": wait})
                got.raise_for_status()
                messages = orjson.loads(got.content)["messages"]
                if messages:
                    break
            if not messages:
                await finished(done)
                return done
            handles = [m["receipt_handle"] for m in messages]
            (await client.post(f"/v1/queues/{QUEUE}/messages/delete",
                               content=orjson.dumps({"receipt_handles": handles}),
                               headers=JSON_HEADERS)).raise_for_status()
            done += len(messages)


def start_server(url: str, workers: int) -> tuple[Any, str]:
    """`conveyor serve` on a free port; returns (process, base URL)."""
    import socket
    import subprocess

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "serve", "--port", str(port),
         "--database", url, "--workers", str(workers), "--no-sqs"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


# ---- running ------------------------------------------------------------------------------

Worker = Callable[[str, Finished], Coroutine[Any, Any, int]]


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def backend_cpu(url: str) -> dict[int, float] | None:
    """CPU seconds of each server backend connected to the database of `url` (None when the
    server's processes cannot be read here)."""
    async def pids() -> list[int]:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            return [r[0] for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", url.rsplit("/", 1)[1])]
        finally:
            await conn.close()

    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for pid in asyncio.run(pids()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        found[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return found


def _child(fn: Worker, target: str, start: Any, out: Any, release: Any) -> None:
    start.wait()
    began = cpu_seconds()

    async def finished(count: int) -> None:
        # Report before closing, then keep the connections (and their server backends,
        # whose CPU the parent reads) until the parent has read them.
        out.put((count, cpu_seconds() - began))
        await asyncio.to_thread(release.wait)

    asyncio.run(fn(target, finished))


def drain(fn: Worker, target: str, processes: int, expected: int,
          database: str | None = None) -> tuple[float, float, float | None]:
    """Run `processes` drainers at once; (messages/s over the wall time, the drainers' CPU
    seconds, the server backends' CPU seconds on `database` or None)."""
    ctx = mp.get_context("spawn")
    start, out, release = ctx.Event(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_child, args=(fn, target, start, out, release))
             for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let the children import and connect before the clock starts
    server_before = backend_cpu(database) if database else None
    began = time.perf_counter()
    start.set()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - began
    server_after = backend_cpu(database) if database else None
    release.set()
    for p in procs:
        p.join()
    total = sum(r[0] for r in results)
    if total != expected:
        raise RuntimeError(f"drained {total}, expected {expected}")
    server = None
    if server_before is not None and server_after is not None:
        # A backend the pools opened during the run counts from zero (its start included).
        server = sum(t - server_before.get(pid, 0.0) for pid, t in server_after.items())
    return total / elapsed, sum(r[1] for r in results), server


IDLE_SECONDS = 5.0


async def latency(target_url: str, via_http: str | None = None, rate: int = 200,
                  seconds: float = 10.0) -> tuple[float, float, float]:
    """p50 and p99 (ms) from send to receipt for a trickle into an idle long-poller, and
    the CPU (ms per second) this process then spends while a long poll waits on nothing."""
    received: list[float] = []
    async with Broker(storage_from_url(target_url), sweep_interval=None) as producer:
        await producer.create_queue("latency")
        consumer = Broker(storage_from_url(target_url), sweep_interval=None)
        await consumer.start()
        total = int(rate * seconds)
        stop = asyncio.Event()

        async def consume() -> None:
            while len(received) < total and not stop.is_set():
                got = await consumer.receive("latency", 10, wait_seconds=1)
                now = time.time()
                for m in got:
                    received.append((now - m.body.value()["t"]) * 1000)
                if got:
                    await consumer.delete("latency", [m.receipt_handle for m in got])

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        for _ in range(total):
            await producer.send("latency", [SendEntry(Body.of({"t": time.time()}))])
            await asyncio.sleep(1 / rate)
        try:
            await asyncio.wait_for(task, 10)
            # Idle: one long poll waiting on the empty queue; what this process burns.
            idle = asyncio.create_task(consumer.receive("latency", 10, wait_seconds=20))
            await asyncio.sleep(0.5)
            began, cpu_began = time.perf_counter(), cpu_seconds()
            await asyncio.sleep(IDLE_SECONDS)
            idle_ms = (cpu_seconds() - cpu_began) / (time.perf_counter() - began) * 1000
            idle.cancel()
        finally:
            stop.set()
            await consumer.close()
    cuts = statistics.quantiles(received, n=100)
    return cuts[49], cuts[98], idle_ms


async def raw_latency(url: str, rate: int = 200, seconds: float = 10.0
                      ) -> tuple[float, float, float]:
    """The same trickle through bare asyncpg (the ceiling of the same run): INSERT, then
    NOTIFY; the consumer, woken by LISTEN, claims and deletes with RAW_CLAIM/RAW_DELETE."""
    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        queue, _ = await broker.create_queue("latency")
    settings = {"enable_sort": "off", "enable_seqscan": "off", "synchronous_commit": "off"}
    producer = await asyncpg.connect(url)
    consumer = await asyncpg.connect(url, server_settings=settings)
    acks = await asyncpg.connect(url)  # acknowledgements commit durably, as the broker's
    listener = await asyncpg.connect(url)
    received: list[float] = []
    total = int(rate * seconds)
    woken = asyncio.Event()
    try:
        await listener.add_listener("raw_wake", lambda *_: woken.set())

        async def consume() -> None:
            while len(received) < total:
                await woken.wait()
                woken.clear()
                while rows := await consumer.fetch(RAW_CLAIM, queue.id, 10):
                    now = time.time()
                    received.extend((now - orjson.loads(r[2])["t"]) * 1000 for r in rows)
                    await acks.execute(RAW_DELETE, [r[0] for r in rows],
                                       sorted({r[1] for r in rows}))

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        for _ in range(total):
            body_text = orjson.dumps({"t": time.time()}).decode()
            await producer.execute(RAW_INSERT, queue.id, [str(uuid.uuid4())], [body_text])
            await producer.execute("SELECT pg_notify('raw_wake', '')")
            await asyncio.sleep(1 / rate)
        await asyncio.wait_for(task, 10)
    finally:
        for conn in (producer, consumer, acks, listener):
            await conn.close()
    cuts = statistics.quantiles(received, n=100)
    return cuts[49], cuts[98], float("nan")


def run(args: argparse.Namespace) -> None:
    """Measure and print the table."""
    rows: list[Row] = []
    latencies: dict[str, tuple[float, float, float]] = {}
    want = set(args.only.split(",")) if args.only else None
    processes = [int(p) for p in args.processes.split(",")]
    n = args.messages

    def wanted(name: str) -> bool:
        return want is None or name in want

    def measure(name: str, make_url: Callable[[], str], enqueue: Any, worker: Any,
                cleanup: Callable[[str], None], http: bool = False) -> None:
        drains: dict[int, float] = {}
        cpus: dict[int, tuple[float, float | None]] = {}
        enqueues: list[float] = []
        for p in processes:
            url = make_url()
            server = None
            try:
                target = url
                if http:
                    server, target = start_server(url, p)
                enq = asyncio.run(enqueue(target, n))
                enqueues.append(enq)
                database = url if url.startswith("postgres") and not http else None
                drains[p], client_cpu, server_cpu = drain(worker, target, p, n, database)
                cpus[p] = (client_cpu, server_cpu)
            finally:
                if server is not None:
                    server.terminate()
                    server.wait()
                cleanup(url)
            print(f"  {name}: enqueue {enq:,.0f}/s, drain x{p} {drains[p]:,.0f}/s", flush=True)
        rows.append(Row(name, statistics.mean(enqueues), drains, cpus))

    def pg_url() -> str:
        return asyncio.run(fresh_pg_database())

    def pg_drop(url: str) -> None:
        asyncio.run(drop_pg_database(url))

    tmp = tempfile.mkdtemp(prefix="conveyor-bench-")

    def sqlite_url() -> str:
        return f"sqlite:///{tmp}/{uuid.uuid4().hex[:8]}.db"

    def no_drop(_url: str) -> None:
        pass

    if wanted("pg-raw"):
        measure("raw SQL (asyncpg), PostgreSQL", pg_url, raw_enqueue, raw_drain_worker, pg_drop)
    if wanted("pg-broker"):
        measure("broker in-process, PostgreSQL", pg_url, broker_enqueue, broker_drain_worker,
                pg_drop)
    if wanted("sqlite-broker"):
        measure("broker in-process, SQLite", sqlite_url, broker_enqueue, broker_drain_worker,
                no_drop)
    if args.http and wanted("pg-http"):
        measure("HTTP API, PostgreSQL", pg_url, http_enqueue, http_drain_worker, pg_drop,
                http=True)
    if args.http and wanted("sqlite-http"):
        measure("HTTP API, SQLite", sqlite_url, http_enqueue, http_drain_worker, no_drop,
                http=True)
    if args.latency and wanted("latency"):
        url = pg_url()
        try:
            latencies["PostgreSQL, raw SQL ceiling"] = asyncio.run(raw_latency(url))
        finally:
            pg_drop(url)
        url = pg_url()
        try:
            latencies["PostgreSQL"] = asyncio.run(latency(url))
        finally:
            pg_drop(url)
        latencies["SQLite"] = asyncio.run(latency(sqlite_url()))

    print()
    print(f"messages: {n:,}, batch {BATCH}, body ~200 B JSON; fresh, un-analysed tables")
    last = processes[-1]
    header = "| path | enqueue msgs/s | " + " | ".join(
        f"drain x{p} msgs/s" for p in processes) + f" | send + drain x{last}, s |"
    print(header)
    print("|" + "---|" * (3 + len(processes)))
    base = rows[0] if rows and rows[0].name.startswith("raw") else None
    for row in rows:
        cells = [f"{row.enqueue:,.0f}" + (f" ({row.enqueue / base.enqueue:.0%})" if base else "")]
        for p in processes:
            d = row.drain.get(p, 0.0)
            cells.append(f"{d:,.0f}" + (f" ({d / base.drain[p]:.0%})" if base else ""))
        total = n / row.enqueue + n / row.drain[last] if row.drain.get(last) else 0.0
        cells.append(f"{total:.1f}")
        print(f"| {row.name} | " + " | ".join(cells) + " |")
    if base:
        print("(percentages: ratio to the raw SQL baseline of the same run)")
    in_process = {r.name.rsplit(", ", 1)[1]: r for r in rows if r.name.startswith("broker")}
    for row in rows:
        peer = in_process.get(row.name.rsplit(", ", 1)[1])
        if row.name.startswith("HTTP") and peer is not None:
            ratios = [f"enqueue {row.enqueue / peer.enqueue:.0%}"] + [
                f"drain x{p} {row.drain[p] / peer.drain[p]:.0%}" for p in processes
                if row.drain.get(p) and peer.drain.get(p)]
            print(f"{row.name} / in-process: " + ", ".join(ratios))
    print()
    print("drain CPU per message, microseconds (client: the drainer processes; server: "
          "the PostgreSQL backends of the benchmark's database)")
    print("| path | " + " | ".join(f"x{p} client | x{p} server | x{p} total" for p in processes)
          + " |")
    print("|" + "---|" * (1 + 3 * len(processes)))
    for row in rows:
        cells = []
        for p in processes:
            client, server = row.cpu.get(p, (0.0, None))
            total = client + (server or 0.0)
            base_total = None
            if base and p in base.cpu:
                base_total = base.cpu[p][0] + (base.cpu[p][1] or 0.0)
            ratio = f" ({total / base_total:.2f}x)" if base_total else ""
            cells += [f"{client / n * 1e6:.1f}",
                      "-" if server is None else f"{server / n * 1e6:.1f}",
                      f"{total / n * 1e6:.1f}{ratio}"]
        print(f"| {row.name} | " + " | ".join(cells) + " |")
    if base:
        print("(ratios: total CPU to the raw SQL baseline of the same run)")
    for name, (p50, p99, idle_ms) in latencies.items():
        idle = "" if idle_ms != idle_ms else f"; idle long poll: {idle_ms:.2f} ms CPU per s"
        print(f"idle-to-delivery latency, {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
              f"(200 msgs/s for 10 s, long-polling consumer){idle}")
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    print("reproduce: python benchmarks/broker.py " + " ".join(sys.argv[1:]))


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--only", default="",
                        help="comma list of: pg-raw, pg-broker, sqlite-broker, pg-http, "
                             "sqlite-http, latency")
    parser.add_argument("--http", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--latency", action=argparse.BooleanOptionalAction, default=True)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
