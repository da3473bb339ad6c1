"""SQS endpoint vs native HTTP API: send, receive and delete in batches of 10, on SQLite.

One broker on a fresh SQLite file serves both apps from one event loop in a thread (as
`conveyor serve` does); a synchronous client in the main thread sends N messages in
batches of 10, then drains them (receive 10 + delete 10) until the queue is empty:
boto3 through the SQS endpoint, and conveyor's own `Client` through the native API; then
both again once an API key exists (every SQS request SigV4-checked against the key and its
grants, every native one by bearer token).

    python benchmarks/sqs.py                  # 5,000 messages each way
    python benchmarks/sqs.py --messages 20000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import uvicorn
from botocore.config import Config

from conveyor.broker.api_keys import CACHE_SECONDS, ApiKeys
from conveyor.broker.broker import Broker
from conveyor.client.sync_client import Client
from conveyor.http.app import create_app
from conveyor.keys import parse_grants
from conveyor.models import Body, SendEntry
from conveyor.sqs import create_sqs_app
from conveyor.storage.factory import storage_from_url

BATCH = 10


def body(i: int) -> str:
    """A ~200-byte JSON notification, as text (SQS bodies are strings)."""
    return (f'{{"user_id": {i}, "email": "user{i}@example.com", "template": "welcome", '
            f'"data": {{"name": "User {i}", "plan": "pro", "locale": "en-GB", '
            f'"unsubscribe": "https://example.com/u/{i:012d}"}}}}')


class Servers:
    """The SQS and native apps on free loopback ports, over one broker, in a thread."""

    def __init__(self, database_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.broker = Broker(storage_from_url(database_url), sweep_interval=None)
        self.call(self.broker.start())
        self.servers = [self._serve(create_sqs_app(self.broker)),
                        self._serve(create_app(self.broker))]
        self.sqs_url, self.native_url = (self._url(s) for s in self.servers)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def _serve(self, app: Any) -> uvicorn.Server:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                               log_level="warning", lifespan="off",
                                               access_log=False))
        asyncio.run_coroutine_threadsafe(server.serve(), self.loop)
        while not server.started:
            time.sleep(0.01)
        return server

    @staticmethod
    def _url(server: uvicorn.Server) -> str:
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        for server in self.servers:
            server.should_exit = True
        time.sleep(0.3)
        self.call(self.broker.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def timed(run: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    count = run()
    return count, time.perf_counter() - started


def bench_sqs(url: str, messages: int, key: tuple[str, str] = ("x", "x")
              ) -> tuple[float, float]:
    sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id=key[0], aws_secret_access_key=key[1],
                       config=Config(retries={"max_attempts": 1}))
    queue = sqs.create_queue(QueueName=f"bench-sqs-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    def send() -> int:
        for start in range(0, messages, BATCH):
            sqs.send_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "MessageBody": body(start + i)} for i in range(BATCH)])
        return messages

    def drain() -> int:
        done = 0
        while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=BATCH).get(
                "Messages"):
            sqs.delete_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
            done += len(got)
        return done

    sent, send_s = timed(send)
    drained, drain_s = timed(drain)
    assert drained == sent, (drained, sent)
    return sent / send_s, drained / drain_s


def bench_native(url: str, messages: int, token: str | None = None
                 ) -> tuple[float, float]:
    with Client(url, api_key=token) as client:
        queue = f"bench-native-{uuid.uuid4().hex[:8]}"
        client.create_queue(queue)

        def send() -> int:
            for start in range(0, messages, BATCH):
                client.send(queue, [SendEntry(Body(body(start + i))) for i in range(BATCH)])
            return messages

        def drain() -> int:
            done = 0
            while got := client.receive(queue, BATCH):
                client.delete(queue, [m.receipt_handle for m in got])
                done += len(got)
            return done

        sent, send_s = timed(send)
        drained, drain_s = timed(drain)
        assert drained == sent, (drained, sent)
        return sent / send_s, drained / drain_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        servers = Servers(f"sqlite:///{tmp}/bench.db")
        try:
            rows = [("SQS endpoint (boto3)", bench_sqs(servers.sqs_url, args.messages)),
                    ("native API (conveyor Client)",
                     bench_native(servers.native_url, args.messages))]
            key, token = servers.call(ApiKeys(servers.broker).create(
                "bench", parse_grants(["send,receive,manage"])))
            time.sleep(CACHE_SECONDS + 0.5)  # the apps learn that keys exist
            rows += [("SQS endpoint, API key (SigV4)",
                      bench_sqs(servers.sqs_url, args.messages, (key.id, token))),
                     ("native API, API key (bearer)",
                      bench_native(servers.native_url, args.messages, token))]
        finally:
            servers.close()
    print(f"{args.messages} messages, batches of {BATCH}, SQLite, one client, one run")
    print(f"{'':30} {'send msg/s':>12} {'receive+delete msg/s':>22}")
    for name, (send, drain) in rows:
        print(f"{name:30} {send:12,.0f} {drain:22,.0f}")
    print(f"reproduce: {sys.executable} benchmarks/sqs.py --messages {args.messages}")


if __name__ == "__main__":
    main()
