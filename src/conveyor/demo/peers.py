"""The demo's peers, each in its own process: Postfix's smtp-sink when found, else an
aiosmtpd sink; the Web Push endpoint; and the FCM and APNs peers (HTTP/2 over TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from conveyor.demo.ending import Janitor, die_with_us
from conveyor.demo.rustserver import available
from conveyor.demo.workload import check_apns, check_email, check_fcm, check_push

SINK_ENV = "CONVEYOR_SMTP_SINK"


def find_smtp_sink() -> str | None:
    """smtp-sink from $CONVEYOR_SMTP_SINK, PATH, or a postfix .deb unpacked in
    /opt/postfix-sink or ~/.local/share/conveyor/postfix (see scripts/get-smtp-sink)."""
    candidates = [os.environ.get(SINK_ENV), shutil.which("smtp-sink"),
                  "/opt/postfix-sink/usr/sbin/smtp-sink",
                  str(Path.home() / ".local/share/conveyor/postfix/usr/sbin/smtp-sink")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    return None


def _libs(binary: str) -> dict[str, str]:
    root = Path(binary).resolve().parent.parent  # .../usr
    env = dict(os.environ)
    lib = root / "lib" / "postfix"
    if lib.is_dir():
        env["LD_LIBRARY_PATH"] = f"{lib}:{env.get('LD_LIBRARY_PATH', '')}"
    return env


class PostfixSink:
    """smtp-sink dumping every transaction into one file, checked after the run.

    The dump goes to tmpfs (/dev/shm) when it has room: for each message smtp-sink
    creates, reads back and unlinks a temporary file beside the dump and appends to the
    dump, and on the disk's file system (ext4 here) those metadata calls cost the sink
    about twice its CPU per message (strace -c: openat and unlink led).
    """

    name = "Postfix smtp-sink (C; every message dumped and checked)"

    def __init__(self, binary: str, port: int, folder: Path, messages: int = 0,
                 janitor: Janitor | None = None) -> None:
        self.shm = _tmpfs_folder(messages * _DUMP_BYTES)
        if self.shm is not None and janitor is not None:
            janitor.remove_at_end(self.shm)  # even if the demo is killed
        where = self.shm or folder
        self.dump = where / "smtp-sink.dump"
        self.dump.touch()
        os.chmod(where, 0o777)  # smtp-sink, as nobody, makes its temporary files there
        os.chmod(self.dump, 0o666)
        args = [binary]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        args += ["-D", str(self.dump), f"127.0.0.1:{port}", "1024"]
        # It dies with the demo, even by `kill -9`: by the parent-death signal, or when run
        # by root (whose `-u nobody` clears that signal) by the janitor's hand.
        self.proc = subprocess.Popen(args, env=_libs(binary), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=die_with_us())
        self.pid = self.proc.pid
        if janitor is not None:
            janitor.kill_at_end(self.pid)

    def results(self) -> dict[str, Any]:
        """Stop and check the dump: per recipient count and content."""
        time.sleep(0.2)
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        received: Counter[str] = Counter()
        bad = 0
        marker = b"X-Client-Addr: "
        if self.dump.stat().st_size == 0:
            return {"received": received, "bad": bad}
        # Walk the dump (hundreds of MB in a million run) through a memory map, one
        # transaction at a time, rather than reading and splitting it whole.
        with self.dump.open("rb") as file, mmap.mmap(file.fileno(), 0,
                                                     access=mmap.ACCESS_READ) as data:
            start = data.find(marker)
            while start >= 0:
                end = data.find(marker, start + len(marker))
                chunk = data[start + len(marker):end if end >= 0 else len(data)]
                at = chunk.find(b"X-Rcpt-Args: <")
                rcpt = chunk[at + 14:chunk.index(b">", at)].decode()
                message = chunk[chunk.index(b"\n", chunk.index(b"\n\t", at) + 2) + 1:]
                received[rcpt] += 1
                if not check_email(rcpt, message.replace(b"\n", b"\r\n")):
                    bad += 1
                start = end
        return {"received": received, "bad": bad}

    def close(self, wait: float = 0.0) -> None:
        """Make sure it is gone, and its dump with it (`wait`: as the other peers')."""
        del wait
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.shm is not None:
            shutil.rmtree(self.shm, ignore_errors=True)


_DUMP_BYTES = 1024  # a demo message's transaction in the dump is about 620 bytes


def _tmpfs_folder(needed: int, root: str = "/dev/shm") -> Path | None:
    """A new folder on tmpfs with twice `needed` bytes free, or None (then the dump
    stays beside the run's other files)."""
    try:
        if not os.path.isdir(root) or shutil.disk_usage(root).free < 2 * needed:
            return None
        return Path(tempfile.mkdtemp(prefix="conveyor-sink-", dir=root))
    except OSError:
        return None


def _aiosmtpd_main(port: int, conn: Connection) -> None:
    from aiosmtpd.controller import Controller

    from conveyor.demo.loopback import SmtpSink

    sink = SmtpSink(keep=False, check=check_email)
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    conn.send("ready")
    conn.recv()  # stop
    controller.stop()
    conn.send({"received": dict(sink.received), "bad": sink.bad,
               "ids": dict(sink.message_ids)})


def _peer_main(target: Any, parent: int, *args: Any) -> None:
    """A peer process's entry point: it dies with the demo, even by `kill -9`."""
    from conveyor.lifeline import die_with

    die_with(parent)
    target(*args)


class _ChildPeer:
    """A peer that runs `target(*args, conn)` in a process of its own and reports over a
    pipe: "ready" once listening; its results when told "stop"."""

    def __init__(self, target: Any, args: tuple[Any, ...], what: str) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_peer_main, args=(target, os.getpid(), *args, child),
                                daemon=True)
        self.proc.start()
        self.pid = self.proc.pid
        if not self.conn.poll(30):
            raise RuntimeError(f"the {what} did not start")
        self.conn.recv()

    def results(self) -> dict[str, Any]:
        """Stop and collect."""
        self.conn.send("stop")
        got: dict[str, Any] = self.conn.recv()
        got["received"] = Counter(got["received"])
        got["ids"] = Counter(got.get("ids", {}))  # by Message-ID / push Topic
        return got

    def close(self, wait: float = 5.0) -> None:
        """Make sure it is gone (killed after `wait` seconds)."""
        self.proc.join(wait)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


class AiosmtpdSink(_ChildPeer):
    """aiosmtpd in its own process (no PIPELINING: the plain aiosmtplib path is used)."""

    name = "aiosmtpd (Python; every message checked)"

    def __init__(self, port: int) -> None:
        super().__init__(_aiosmtpd_main, (port,), "aiosmtpd sink")


def _push_main(port: int, keys: list[tuple[bytes, str, bytes]], verify_every: int,
               conn: Connection) -> None:
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    from conveyor.demo.loopback import PushEndpoint, Subscriber

    subs = [Subscriber(load_der_private_key(der, None), p256dh, auth)
            for der, p256dh, auth in keys]
    endpoint = PushEndpoint(subs, verify_every=verify_every, check=check_push, keep=False)

    async def main() -> None:
        from aiohttp import web

        from conveyor.demo import rustserver

        runner: Any = None
        server: Any = contextlib.nullcontext()
        if rustserver.available():
            server = rustserver.RustServer(endpoint.rsgi(), port)
        else:
            runner = web.AppRunner(endpoint.app(), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        async with server:
            conn.send("ready")
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, conn.recv)
            conn.send({"received": dict(endpoint.received), "bad": endpoint.bad,
                       "verified": endpoint.verified, "ids": dict(endpoint.topics)})
        if runner is not None:
            await runner.cleanup()

    _run(main())


def _run(coro: Any) -> None:
    from conveyor.collector import tune_collector

    tune_collector()  # a peer's requests make short-lived objects, as a worker's do
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


class PushSink(_ChildPeer):
    """The Web Push endpoint in its own process."""

    def __init__(self, port: int, keys: list[tuple[bytes, str, bytes]],
                 verify_every: int) -> None:
        self.verify_every = verify_every
        super().__init__(_push_main, (port, keys, verify_every), "push endpoint")

    @property
    def name(self) -> str:
        """What it checks, and on which server."""
        which = "every message" if self.verify_every == 1 else \
            f"1 in {self.verify_every} messages"
        server = "granian: HTTP/1.1 in Rust" if available() else "aiohttp"
        return (f"Web Push endpoint ({server}; TTL and aes128gcm on every request; VAPID "
                f"verified and payload decrypted for {which})")


def _mobile_main(kind: str, port: int, cert: str, key: str, public_pem: bytes,
                 conn: Connection) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from conveyor.demo import rustserver
    from conveyor.demo.h2server import H2Server, server_context
    from conveyor.demo.mobile_peers import ApnsPeer, FcmPeer

    public = load_pem_public_key(public_pem)
    peer: FcmPeer | ApnsPeer
    if kind == "fcm":
        peer = FcmPeer(FCM_PROJECT, FCM_EMAIL, public, check=check_fcm, keep=False,
                       token_uri=f"https://127.0.0.1:{port}/token")
    else:
        peer = ApnsPeer({APNS_KEY_ID: public}, APNS_TEAM, APNS_TOPIC, check=check_apns,
                        keep=False)

    async def main() -> None:
        server: Any = rustserver.RustServer(rustserver.h2_app(peer.handle), port, cert=cert,
                                            key=key) if rustserver.available() else \
            H2Server(peer.handle, server_context(cert, key), port=port)
        async with server:
            conn.send("ready")
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        conn.send({"received": dict(peer.received), "bad": peer.bad,
                   "verified": sum(peer.received.values()), "refused": dict(peer.refused)})

    _run(main())


FCM_PROJECT, FCM_EMAIL = "conveyor-demo", "demo@conveyor-demo.iam.gserviceaccount.com"
APNS_KEY_ID, APNS_TEAM, APNS_TOPIC = "DEMOKEY123", "DEMOTEAM12", "example.conveyor.demo"


class MobileSink(_ChildPeer):
    """The FCM (with its OAuth2 token endpoint) or APNs peer in its own process, over
    HTTP/2 and TLS: credentials verified on every request, content checked on every one."""

    def __init__(self, kind: str, port: int, cert: Path, key: Path, public_pem: bytes
                 ) -> None:
        self.kind = kind
        super().__init__(_mobile_main, (kind, port, str(cert), str(key), public_pem),
                         f"{kind} peer")

    @property
    def name(self) -> str:
        """What it checks, and on which server."""
        server = "granian: HTTP/2 + TLS in Rust" if available() else "h2 + TLS"
        if self.kind == "fcm":
            return (f"FCM HTTP v1 peer ({server}; OAuth2 JWT grant verified, bearer token "
                    "matched on every request, every message checked)")
        return (f"APNs peer ({server}; ES256 provider token verified once per distinct "
                "token, matched on every request; every message checked)")


def closing_all(*things: Any) -> Iterator[None]:
    """Close every peer on the way out."""
    try:
        yield
    finally:
        for thing in things:
            if thing is not None:
                thing.close()
