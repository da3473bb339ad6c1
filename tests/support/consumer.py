"""A consumer process for the race test: drains a queue and reports what it was handed.

Usage: python consumer.py DATABASE_URL QUEUE WORKDIR NAME

Writes WORKDIR/NAME.ready once connected, waits for WORKDIR/go, then receives and deletes
until a receive comes back empty, and writes one JSON line per delivery to WORKDIR/NAME.jsonl
(id, body, receive_count, receipt_handle, the delete's status, monotonic receive time).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path


async def consume(url: str, queue: str, workdir: Path, name: str, batch: int) -> None:
    from conveyor.broker.broker import Broker
    from conveyor.storage.factory import storage_from_url

    async with Broker(storage_from_url(url), sweep_interval=None) as broker:
        await broker.queue(queue)
        (workdir / f"{name}.ready").touch()
        go = workdir / "go"
        deadline = time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit("never told to go")
            await asyncio.sleep(0.005)
        lines: list[str] = []
        while True:
            messages = await broker.receive(queue, max_messages=batch, wait_seconds=1)
            if not messages:
                break
            received = time.monotonic()
            results = await broker.delete(queue, [m.receipt_handle for m in messages])
            for message, result in zip(messages, results):
                lines.append(json.dumps({
                    "id": message.id, "body": message.body.value(),
                    "receive_count": message.receive_count,
                    "receipt_handle": message.receipt_handle, "delete": result.status,
                    "at": received}))
        (workdir / f"{name}.jsonl").write_text("".join(line + "\n" for line in lines))


def main() -> None:
    url, queue, workdir, name = sys.argv[1:5]
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 25
    asyncio.run(consume(url, queue, Path(workdir), name, batch))


if __name__ == "__main__":
    main()
