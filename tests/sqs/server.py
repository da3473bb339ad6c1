"""A live SQS endpoint for tests: uvicorn on a free loopback port, in a thread.

The broker and the server share one event loop in that thread; tests talk to it over
HTTP (boto3, aiobotocore, httpx, the AWS CLI) and may run broker coroutines on its loop
with `call` (to look behind the endpoint, as the native API would).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

from conveyor.broker.broker import Broker
from conveyor.sqs import create_sqs_app
from conveyor.storage.factory import storage_from_url

T = TypeVar("T")


class SqsServer:
    """A started endpoint over a Broker on `database_url`."""

    def __init__(self, database_url: str, account_id: str = "000000000000",
                 relaxed: bool = False) -> None:
        self.database_url = database_url
        self.account_id = account_id
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="sqs-server")
        self._thread.start()
        self.broker = Broker(storage_from_url(database_url), sweep_interval=None,
                             poll_interval=0.25, queue_cache_seconds=0.0)
        self.call(self.broker.start())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_sqs_app(self.broker, account_id=account_id,
                                               relaxed=relaxed),
                                log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._serving = asyncio.run_coroutine_threadsafe(
            self._server.serve(sockets=[sock]), self._loop)
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
            if time.monotonic() > deadline:
                raise RuntimeError("the SQS test server did not start")
            time.sleep(0.01)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop (e.g. a broker call) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        """Stop serving, close the broker, end the thread."""
        # Answer waiting long polls now (a client's last poll would hold the shutdown).
        self._loop.call_soon_threadsafe(self.broker.end_long_polls)
        self._server.should_exit = True
        self._serving.result(15)
        self.call(self.broker.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
