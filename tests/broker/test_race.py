"""8 consumer processes drain 10,000 messages: each delivered once, none lost, none doubled.

Each consumer is its own process with its own Broker and connections (for SQLite: eight
processes sharing one WAL file). Leases last 10 minutes, far longer than the drain, so a
message handed out twice would have been handed out twice inside one lease.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
import time
from pathlib import Path

import pytest

from conveyor.broker.broker import Broker
from tests.conftest import OpenBroker
from tests.support.messages import entry

CONSUMERS = 8
MESSAGES = 10_000
CONSUMER = Path(__file__).parent.parent / "support" / "consumer.py"
ROOT = Path(__file__).parent.parent.parent


@pytest.mark.slow
async def test_eight_consumers_drain_ten_thousand(database_url: str, open_broker: OpenBroker,
                                                  tmp_path: Path) -> None:
    # Real time here: the consumer processes have no ManualClock.
    broker: Broker = await open_broker(clock=None)
    await broker.create_queue("race", {"visibility_timeout": 600})
    for start in range(0, MESSAGES, 1000):
        await broker.send("race", [entry(i) for i in range(start, start + 1000)])
    assert (await broker.queue_stats("race")).visible == MESSAGES

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    names = [f"c{i}" for i in range(CONSUMERS)]
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, str(CONSUMER), database_url, "race", str(tmp_path), name,
        str(10 + 5 * i), env=env, stderr=asyncio.subprocess.PIPE)
        for i, name in enumerate(names)]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"{n}.ready").exists() for n in names):
            for proc in procs:
                if proc.returncode not in (None, 0):
                    _, err = await proc.communicate()
                    pytest.fail(f"a consumer failed to start:\n{err.decode()}")
            assert time.monotonic() < deadline, "consumers did not start"
            await asyncio.sleep(0.02)
        started = time.monotonic()
        (tmp_path / "go").touch()
        for proc in procs:
            _, err = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode == 0, err.decode()
        took = time.monotonic() - started
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    deliveries = []
    per_consumer = {}
    for name in names:
        lines = (tmp_path / f"{name}.jsonl").read_text().splitlines()
        per_consumer[name] = len(lines)
        deliveries += [json.loads(line) for line in lines]

    counts = collections.Counter(d["id"] for d in deliveries)
    doubled = [i for i, n in counts.items() if n > 1]
    assert not doubled, f"{len(doubled)} messages handed out twice inside one lease"
    assert len(deliveries) == MESSAGES, f"lost {MESSAGES - len(deliveries)} messages"
    assert sorted(d["body"] for d in deliveries) == list(range(MESSAGES))
    assert {d["receive_count"] for d in deliveries} == {1}
    assert len({d["receipt_handle"] for d in deliveries}) == MESSAGES
    assert collections.Counter(d["delete"] for d in deliveries) == {"ok": MESSAGES}
    stats = await broker.queue_stats("race")
    assert stats.total == 0, stats
    busy = sum(1 for n in per_consumer.values() if n)
    assert busy >= 2, f"only {busy} consumer(s) got messages: {per_consumer}"
    print(f"drained {MESSAGES} with {CONSUMERS} processes in {took:.2f} s: {per_consumer}")
