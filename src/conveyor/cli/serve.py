"""`conveyor serve` and `conveyor migrate`: sockets, processes and servers; no queue logic.

The parent binds the sockets; each worker process (one, or `--workers N` spawned children
sharing the sockets, as uvicorn's multiprocess mode does) has its own Broker, shared by the
native API and, when `conveyor.sqs.app` is installed, the SQS endpoint on its own port.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import uvicorn

from conveyor.broker.broker import Broker
from conveyor.collector import tune_collector
from conveyor.config import Config
from conveyor.errors import StorageUnavailable
from conveyor.forgery import is_loopback
from conveyor.http.app import create_app, feedback_settings
from conveyor.http.headertimeout import protocol_with_header_timeout
from conveyor.http.listener import FileGuard, ServingLoop
from conveyor.http.requestlog import configure_logging
from conveyor.lifeline import die_with
from conveyor.rlimits import raise_open_files_limit
from conveyor.storage.base import Storage
from conveyor.storage.factory import default_database_url, default_sqlite_path, storage_from_url

log = logging.getLogger("conveyor.serve")

SqsFactory = Callable[..., Any]

_MIN_WORKER_SECONDS = 3.0


def sqs_app_factory() -> SqsFactory | None:
    """`conveyor.sqs.app.create_sqs_app` when that module exists, else None."""
    try:
        module = importlib.import_module("conveyor.sqs.app")
    except ModuleNotFoundError as exc:
        if exc.name in ("conveyor.sqs", "conveyor.sqs.app"):
            return None
        raise  # the module is there but broken: say so
    factory: SqsFactory = module.create_sqs_app
    return factory


def database_url(config: Config) -> str:
    """The configured database, or the embedded SQLite file."""
    return config.database_url or default_database_url()


def say(text: str) -> None:
    """A line for the operator on stderr (stdout stays for data)."""
    print(f"conveyor: {text}", file=sys.stderr, flush=True)


def bind(host: str, port: int, flag: str = "--port") -> socket.socket:
    """A listening TCP socket (port 0 picks a free one); an error names the address and the
    `flag` that changes it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror} (another "
                                 f"server there? choose another with {flag})") from exc
    if family in (socket.AF_INET, socket.AF_INET6):  # accepted sockets inherit it on Linux
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def run_serve(config: Config) -> int:
    """Bind, announce, and serve until SIGINT or SIGTERM."""
    soft, raised = raise_open_files_limit()  # the children inherit it
    tune_collector()
    if raised != soft:
        say(f"raised the open-files limit from {soft:,} to {raised:,}")
    config = replace(config, database_url=database_url(config))
    assert config.database_url is not None
    # once, before the workers share the schema; a database still starting is waited for
    migrate(config.database_url, wait=START_WAIT_SECONDS)
    from conveyor.cli.key_commands import warn_if_open  # API keys (trust)

    warn_if_open(config.database_url, config.server.host)
    if config.sqs.credentials:
        say("error: --sqs-credentials (CONVEYOR_SQS_CREDENTIALS) gave way to API keys, one "
            "model for every door: bring each pair in with `conveyor keys create NAME "
            "--allow ACTIONS[:PATTERN] --access-key-id AKID --secret-stdin`, then drop it.")
        return 2
    from conveyor.sealing import sealer_from

    sealer_from(config.keys_secret)  # a short CONVEYOR_KEYS_SECRET fails here, at once
    sqs_factory = sqs_app_factory() if config.sqs.enabled else None
    sockets = [bind(config.server.host, config.server.port)]
    if sqs_factory is not None:
        sockets.append(bind(config.server.host, config.sqs.port, "--sqs-port or --no-sqs"))
    scheme = "https" if config.server.tls_cert else "http"
    api = _url(sockets[0], scheme)
    say(f"HTTP API on {api} (the native JSON API; its WebSocket stream at "
        f"{'wss' if scheme == 'https' else 'ws'}{api.removeprefix(scheme)}"
        "/v1/queues/QUEUE/stream)")
    say(f"  dashboard  {api}/")
    say(f"  API docs   {api}/api-docs")
    say(f"  metrics    {api}/metrics")
    if sqs_factory is not None:
        say(f"SQS endpoint on {_url(sockets[1], scheme)}")
    elif config.sqs.enabled:
        say("SQS endpoint not installed; serving the native API only")
    if config.server.workers == 1:
        worker_main(config, sockets)
        return 0
    return _supervise(config, sockets)


START_WAIT_SECONDS = 60.0
"""How long `conveyor serve` waits at start for a database server that cannot answer yet
(a server started by systemd before its database is common) before it gives up."""

REMIND_EVERY = 30.0
"""Seconds between lines saying that the database is still unavailable."""


def migrate(url: str, *, wait: float = 0.0) -> tuple[int, int]:
    """Open the database (which applies pending migrations), saying which one it is (an
    SQLite file's full path; a PostgreSQL URL without its password); (applied, known)
    versions. A database server that cannot answer yet (`StorageUnavailable`) is tried
    again for up to `wait` seconds (an SQLite file's trouble is no wait's to cure)."""
    storage = storage_from_url(url)
    path = getattr(storage, "path", None)  # an SQLite file: a relative URL hides where
    if path is not None:
        where = Path(path).resolve()
        state = "using" if where.exists() else "creating"
        kind = "the embedded SQLite database" if where == default_sqlite_path().resolve() \
            else "the SQLite database"
        say(f"{state} {kind} {where}")
        wait = 0.0
    else:
        say(f"using PostgreSQL {without_password(url)}")
    started = time.monotonic()
    told = 0.0  # (monotonic) when the operator was last told that it is unavailable
    pause = 0.5
    while True:
        try:
            versions = asyncio.run(_open(storage))
        except StorageUnavailable as exc:
            waited = time.monotonic() - started
            if waited >= wait:
                if told:
                    say(f"gave up waiting for the database after {waited:.0f} s")
                raise
            if not told:
                told = time.monotonic()
                say(f"the database is unavailable ({exc.message}); retrying for up to "
                    f"{wait:.0f} s")
            elif time.monotonic() - told >= REMIND_EVERY:
                told = time.monotonic()
                say(f"the database is still unavailable after {waited:.0f} s "
                    f"({exc.message}); retrying")
            time.sleep(min(pause, wait - waited))
            pause = min(pause * 2, 5.0)
            storage = storage_from_url(url)  # a fresh pool for each try
            continue
        if told:
            say(f"the database is available after {time.monotonic() - started:.1f} s")
        return versions


async def _open(storage: Storage) -> tuple[int, int]:
    try:
        await storage.open()
    except BaseException:
        with contextlib.suppress(Exception):  # what the failed open left (a pool)
            await storage.close()
        raise
    try:
        return await storage.schema_version()
    finally:
        await storage.close()


def without_password(url: str) -> str:
    """A database URL fit to print: its password (in the URL's user part or its query)
    left out."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}@{host}")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != "password"]
    return urlunsplit(parts._replace(query=urlencode(query)))


# one worker process ------------------------------------------------------------------
class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `serve_sockets`, which runs several."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


def worker_main(config: Config, sockets: list[socket.socket],
                supervisor: int | None = None) -> None:
    """Run one worker process's servers on already-bound sockets (dying with the
    `supervisor` process, when one started it)."""
    if supervisor is not None:
        die_with(supervisor)
    configure_logging(json_lines=config.log_json)  # text or JSON lines, with request ids
    # connections within the open-files limit (conveyor.http.listener)
    guard = FileGuard(max_connections=config.server.max_connections)
    timeout = config.server.header_timeout  # a TLS handshake gets as long as a head
    with asyncio.Runner(loop_factory=lambda: ServingLoop(guard, timeout)) as runner:
        runner.run(serve_sockets(config, sockets))


async def serve_sockets(config: Config, sockets: list[socket.socket]) -> None:
    """Serve the native API (and the SQS endpoint) with one broker until told to stop."""
    broker = Broker(storage_from_url(config.database_url), region=config.region,
                    max_in_flight=config.server.max_in_flight,
                    max_depth=config.server.max_depth,
                    max_long_polls=config.server.max_long_polls)
    await broker.start()
    try:
        loopback = is_loopback(config.server.host)
        allowed = config.server.allowed_hosts
        apps: list[Any] = [create_app(broker, max_request_bytes=config.server.max_request_bytes,
                                      require_keys=not loopback, allowed_hosts=allowed,
                                      feedback=feedback_settings(config),
                                      file_templates=config.server.templates)]
        sqs_factory = sqs_app_factory() if len(sockets) > 1 else None
        if sqs_factory is not None:
            apps.append(sqs_factory(broker, account_id=config.sqs.account_id,
                                    require_keys=not loopback, allowed_hosts=allowed,
                                    keys_secret=config.keys_secret,
                                    max_request_bytes=config.server.max_request_bytes,
                                    relaxed=config.sqs.relaxed))
        tls = config.server.tls_cert
        # slow clients: a late request head closes its connection (uvicorn has no such bound)
        protocol = protocol_with_header_timeout(config.server.header_timeout)
        servers = [_Server(uvicorn.Config(app, http=protocol, lifespan="auto", access_log=False,
                                          log_level="warning", timeout_graceful_shutdown=5,
                                          ssl_certfile=tls, ssl_keyfile=config.server.tls_key))
                   for app in apps]
        loop = asyncio.get_running_loop()
        if isinstance(loop, ServingLoop):  # both ports share this process's file handles
            loop.guard.connections = lambda: sum(len(s.server_state.connections)
                                                 for s in servers)
            apps[0].state.file_guard = loop.guard  # /readyz reports it
        _stop_on_signals(servers, broker)
        await asyncio.gather(*(server.serve(sockets=[sock])
                               for server, sock in zip(servers, sockets)))
    finally:
        loop = asyncio.get_running_loop()
        if isinstance(loop, ServingLoop):
            loop.guard.flush()  # the last counts, not left for a timer that will not run
        await broker.close()


def _stop_on_signals(servers: list[_Server], broker: Broker) -> None:
    """SIGTERM/SIGINT: stop accepting, answer waiting long polls, let requests in flight
    finish (up to the graceful timeout); a second signal forces the exit."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        broker.end_long_polls()
        for server in servers:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


# several worker processes ------------------------------------------------------------
def _supervise(config: Config, sockets: list[socket.socket]) -> int:
    """Run `workers` spawned processes on the shared sockets; restart any that dies after
    running a while (one that dies at once stops the lot: it is a configuration error).
    The children die with this process, even by `kill -9` (`conveyor.lifeline`)."""
    context = multiprocessing.get_context("spawn")
    stopping = False
    failed = False

    def start() -> tuple[multiprocessing.process.BaseProcess, float]:
        process = context.Process(target=worker_main, args=(config, sockets, os.getpid()))
        process.start()
        return process, time.monotonic()

    def on_signal(sig: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    workers = [start() for _ in range(config.server.workers)]
    say(f"started {len(workers)} worker processes")
    try:
        while not stopping:
            time.sleep(0.2)
            for i, (process, started) in enumerate(workers):
                if process.is_alive() or stopping:
                    continue
                if time.monotonic() - started < _MIN_WORKER_SECONDS:
                    say(f"worker {process.pid} exited at once with {process.exitcode}; "
                        "stopping")
                    stopping = failed = True
                    break
                say(f"worker {process.pid} exited with {process.exitcode}; restarting")
                workers[i] = start()
    finally:
        for process, _ in workers:
            if process.is_alive():
                process.terminate()
        for process, _ in workers:
            process.join(15)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0
