"""Mobile push benchmarks, each peer in its own process on loopback, client CPU counted.

1. HTTP/2 clients: the same APNs-shaped requests (200 in flight) into the local APNs peer
   through conveyor's pool on `h2`, httpx with `http2=True`, and niquests — requests per
   client CPU-second, rounds in turn, medians.
2. Channels alone: FCM, APNs and Web Push channels rendering and sending N notifications
   into their local peers, in batches as the delivery worker does — notifications per
   client CPU-second, the same run.

    python benchmarks/mobile.py                   # both, 20,000 per contender

niquests is measured only when installed, and is kept out of the project's environment on
purpose: it brings urllib3-future, which replaces the `urllib3` that requests, boto3 and
schemathesis import (they break). Measure it in a throwaway venv:
`python -m venv /tmp/nq && /tmp/nq/bin/pip install -e . niquests`.
    python benchmarks/mobile.py --clients-only --requests 30000 --rounds 3

Measured 2026-12-05 on the shared 2-core machine (load ~14 from other work; CPU per
request is the figure to read, wall rates are not), `--requests 10000 --rounds 3`:
clients: h2 pool 5,777 req/CPU-s, httpx (http2) 661, niquests 1,192; channels: FCM 6,203
notifications/CPU-s, APNs 5,438, Web Push 3,545.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing as mp
import os
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from conveyor.notify.models import Item

TEAM, KID, TOPIC, PROJECT = "TEAM123456", "KEY1234567", "com.example.bench", "bench"
EMAIL = "bench@bench.iam.gserviceaccount.com"


def _pem(key: Any) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def _peer(kind: str, cert: str, key: str, secret: str, ports: Any, stop: Any) -> None:
    """Child process: one peer until `stop` is set."""
    async def main() -> None:
        from conveyor.demo.h2server import H2Server, server_context
        from conveyor.demo.mobile_peers import ApnsPeer, FcmPeer
        from conveyor.notify import jwt

        if kind == "push":
            from aiohttp import web

            from conveyor.demo.loopback import PushEndpoint, make_subscriber

            endpoint = PushEndpoint([make_subscriber()], verify_every=10**9, keep=False)
            runner = web.AppRunner(endpoint.app())
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            ports.put(runner.addresses[0][1])
            await asyncio.to_thread(stop.wait)
            await runner.cleanup()
            return
        public = jwt.load_private_key(secret).public_key()
        handler: Any
        if kind == "fcm":
            handler = FcmPeer(PROJECT, EMAIL, public, keep=False).handle
        else:
            handler = ApnsPeer({KID: public}, TEAM, TOPIC, keep=False).handle
        async with H2Server(handler, server_context(cert, key)) as server:
            ports.put(server.port)
            await asyncio.to_thread(stop.wait)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


class Peer:
    """A peer process and its port."""

    def __init__(self, kind: str, cert: Path, key: Path, secret: str) -> None:
        ctx = mp.get_context("spawn")
        ports, self.stop = ctx.Queue(), ctx.Event()
        self.proc = ctx.Process(target=_peer, args=(kind, str(cert), str(key), secret,
                                                    ports, self.stop), daemon=True)
        self.proc.start()
        self.port = int(ports.get(timeout=30))

    def close(self) -> None:
        self.stop.set()
        self.proc.join(10)


# 1. clients ------------------------------------------------------------------------------
async def _client_round(name: str, port: int, cafile: str, token: str, n: int,
                        in_flight: int) -> tuple[float, float]:
    """(requests per client CPU-second, per wall second)."""
    path = "/3/device/" + "ab" * 32
    headers = {"authorization": f"bearer {token}", "apns-topic": TOPIC,
               "apns-push-type": "alert", "apns-priority": "10"}
    body = b'{"aps":{"alert":{"title":"Hello","body":"' + b"x" * 150 + b'"}}}'
    gate = asyncio.Semaphore(in_flight)
    statuses: list[int] = []
    if name == "h2pool":
        from conveyor.notify.http2 import H2Pool

        pool = H2Pool("127.0.0.1", port, size=2,
                      context=ssl.create_default_context(cafile=cafile))
        pairs = list(headers.items())

        async def one() -> None:
            async with gate:
                statuses.append((await pool.request("POST", path, pairs, body))[0])
        close: Any = pool.close
    elif name == "httpx":
        import httpx

        client = httpx.AsyncClient(http2=True, verify=ssl.create_default_context(
            cafile=cafile), limits=httpx.Limits(max_connections=2))
        url = f"https://127.0.0.1:{port}{path}"

        async def one() -> None:
            async with gate:
                statuses.append((await client.post(url, content=body,
                                                   headers=headers)).status_code)
        close = client.aclose
    else:
        import niquests

        session = niquests.AsyncSession(multiplexed=False, pool_maxsize=2)
        session.verify = cafile
        url = f"https://127.0.0.1:{port}{path}"

        async def one() -> None:
            async with gate:
                resp = await session.post(url, data=body, headers=headers, verify=cafile)
                statuses.append(int(resp.status_code or 0))
        close = session.close
    await asyncio.gather(*(one() for _ in range(50)))  # warm: connections, TLS
    statuses.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await close()
    ok = statuses.count(200)
    assert ok == n, f"{name}: {ok} of {n} answered 200 ({set(statuses)})"
    return n / cpu, n / wall


def clients(folder: Path, cert: Path, key: Path, n: int, rounds: int) -> None:
    from conveyor.notify import jwt

    ec_key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.sign({"iss": TEAM, "iat": int(time.time())}, ec_key, {"kid": KID})
    peer = Peer("apns", cert, key, _pem(ec_key))
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        for _ in range(rounds):
            for name in ("h2pool", "httpx", "niquests"):
                if name == "niquests" and importlib.util.find_spec("niquests") is None:
                    continue
                got = asyncio.run(_client_round(name, peer.port, str(cert), token, n, 200))
                results.setdefault(name, []).append(got)
    finally:
        peer.close()
    base = statistics.median(c for c, _ in results["h2pool"])
    print(f"HTTP/2 clients, {n:,} requests x {rounds} rounds, 200 in flight, 2 connections "
          "(medians):")
    for name, runs in results.items():
        cpu = statistics.median(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"  {name:>9}: {cpu:8,.0f} req/CPU-s  {wall:8,.0f} req/s wall  "
              f"({cpu / base:.2f}x the h2 pool; spread {min(c for c, _ in runs):,.0f}-"
              f"{max(c for c, _ in runs):,.0f})")


# 2. channels -----------------------------------------------------------------------------
async def _channel_round(kind: str, port: int, cafile: str, secret: str, n: int
                         ) -> tuple[float, float]:
    context = ssl.create_default_context(cafile=cafile)
    channel: Any
    if kind == "fcm":
        from conveyor.notify import FcmChannel

        account = {"project_id": PROJECT, "client_email": EMAIL, "private_key": secret,
                   "token_uri": f"https://127.0.0.1:{port}/token"}
        channel = FcmChannel(account, url=f"https://127.0.0.1:{port}", ssl_context=context)
        items = [Item(uuid.uuid4().hex, f"dev{i:08d}:APA91b" + "x" * 24, None, {},
                      {"title": "Your code", "body": f"Hi user {i}, your code is {i}."}, 0)
                 for i in range(n)]
    elif kind == "apns":
        from conveyor.notify import ApnsChannel

        channel = ApnsChannel(secret, KID, TEAM, TOPIC, url=f"https://127.0.0.1:{port}",
                              ssl_context=context)
        items = [Item(uuid.uuid4().hex, f"{i:064x}", None, {},
                      {"title": "Your code", "body": f"Hi user {i}, your code is {i}."}, 0)
                 for i in range(n)]
    else:
        from cryptography.hazmat.primitives.asymmetric import ec as ec_

        from conveyor.demo.loopback import make_subscriber
        from conveyor.notify import WebPushChannel

        channel = WebPushChannel(_pem(ec_.generate_private_key(ec_.SECP256R1())),
                                 {"sub": "mailto:bench@example.com"})
        sub = make_subscriber().subscription(f"http://127.0.0.1:{port}/push/0")
        items = [Item(uuid.uuid4().hex, sub["endpoint"], None, {}, {
            "subscription": sub, "ttl": 3600,
            "payload": {"title": "Your code", "body": f"Hi user {i}, your code is {i}."}}, 0)
                 for i in range(n)]
    await channel.open()
    size = channel.batch_size
    warm = items[:size]
    await channel.send_many(warm, [channel.render(i) for i in warm])
    cpu, wall = time.process_time(), time.perf_counter()
    sent = 0
    lanes = 4  # batches in flight, as the delivery worker's lanes

    async def lane(start: int) -> None:
        nonlocal sent
        for at in range(start * size, n, size * lanes):
            batch = items[at:at + size]
            results = await channel.send_many(batch, [channel.render(i) for i in batch])
            sent += sum(r.outcome == "sent" for r in results)

    await asyncio.gather(*(lane(k) for k in range(lanes)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await channel.close()
    assert sent == n, f"{kind}: {sent} of {n} sent"
    return n / cpu, n / wall


def channels(folder: Path, cert: Path, key: Path, n: int, rounds: int) -> None:
    secrets = {"fcm": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
               "apns": _pem(ec.generate_private_key(ec.SECP256R1())), "push": ""}
    peers = {kind: Peer(kind, cert, key, secret) for kind, secret in secrets.items()}
    results: dict[str, list[tuple[float, float]]] = {}
    peer_us: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):
            for kind in ("push", "fcm", "apns"):
                before = _cpu_seconds(peers[kind].proc.pid)
                got = asyncio.run(_channel_round(kind, peers[kind].port, str(cert),
                                                 secrets[kind], n))
                results.setdefault(kind, []).append(got)
                peer_us.setdefault(kind, []).append(
                    (_cpu_seconds(peers[kind].proc.pid) - before) / (n + 100) * 1e6)
    finally:
        for peer in peers.values():
            peer.close()
    base = statistics.median(c for c, _ in results["push"])
    print(f"Channels alone into their local peers, {n:,} notifications x {rounds} rounds "
          "(render + send, 4 batches in flight; medians; the peer's CPU per notification "
          "beside; load average {:.1f}):".format(os.getloadavg()[0]))
    for kind, runs in results.items():
        cpu = statistics.median(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"  {kind:>5}: {cpu:8,.0f} notifications/CPU-s = {1e6 / cpu:5.0f} us  "
              f"{wall:8,.0f}/s wall  ({cpu / base:.2f}x Web Push); peer "
              f"{statistics.median(peer_us[kind]):5.0f} us/notification")


def _cpu_seconds(pid: int | None) -> float:
    import psutil  # type: ignore[import-untyped]

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients-only", action="store_true")
    parser.add_argument("--channels-only", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.tls import self_signed

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cert, key = self_signed(folder)
        if not args.channels_only:
            clients(folder, cert, key, args.requests, args.rounds)
        if not args.clients_only:
            channels(folder, cert, key, args.requests, args.rounds)


if __name__ == "__main__":
    main()
