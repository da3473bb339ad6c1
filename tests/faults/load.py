"""A bounded load of sends, receives and deletes over the native API, and the ledger that
says afterwards whether anything was lost or delivered again after its acknowledgement.

Every body is unique (`tag-n`), so each message can be followed from its send to its
delete. A send answered 2xx is *acknowledged*; one that failed or never answered is
*unknown* (it may have landed). A delete answered `ok` is an acknowledged delete; that
message must never be delivered again. Traffic goes only to the loopback server given.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

VISIBILITY = 2  # seconds: short leases, so a drain after a fault is quick


@dataclass
class Ledger:
    """What the clients were told, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent_ok: set[str] = field(default_factory=set)
    sent_unknown: set[str] = field(default_factory=set)
    deleted_ok: dict[str, float] = field(default_factory=dict)  # body -> when acknowledged
    delivered: Counter[str] = field(default_factory=Counter)
    redelivered_after_ack: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1


@dataclass(frozen=True)
class Report:
    """The reconciliation of one run (every figure but the first three must be 0)."""

    acknowledged_sends: int
    delivered: int
    in_flight_at_fault: int
    lost: int
    duplicates_after_ack: int
    acked_delete_came_back: int
    phantoms: int
    drained_twice: int

    def check(self) -> None:
        assert (self.lost, self.duplicates_after_ack, self.acked_delete_came_back,
                self.phantoms, self.drained_twice) == (0, 0, 0, 0, 0), self


def create_queue(url: str, queue: str, visibility: int = VISIBILITY) -> None:
    answer = httpx.post(f"{url}/v1/queues", json={
        "name": queue, "attributes": {"visibility_timeout": visibility}}, timeout=10)
    assert answer.status_code in (200, 201), answer.text


class Load:
    """Producers and consumers on threads until `stop()` or their bounds run out.

    `base` is read on every request, so a test may point the load at a restarted server.
    """

    def __init__(self, base: str, queue: str, *, producers: int = 3, consumers: int = 2,
                 batch: int = 10, max_sends: int = 20_000, seconds: float = 30.0) -> None:
        self.base = base
        self.queue = queue
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._batch = batch
        self._max_sends = max_sends
        self._deadline = time.monotonic() + seconds
        self._counter = itertools.count()
        self._threads = [threading.Thread(target=self._produce, args=(f"p{i}",), daemon=True)
                         for i in range(producers)]
        self._threads += [threading.Thread(target=self._consume, daemon=True)
                          for _ in range(consumers)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Ledger:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return self.ledger

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def sent(self) -> int:
        with self.ledger.lock:
            return len(self.ledger.sent_ok)

    def _produce(self, tag: str) -> None:
        ledger = self.ledger
        with httpx.Client(timeout=10) as client:
            while self._running():
                n = next(self._counter)
                if n * self._batch >= self._max_sends:
                    return
                bodies = [f"{tag}-{n}-{i}" for i in range(self._batch)]
                try:
                    answer = client.post(f"{self.base}/v1/queues/{self.queue}/messages",
                                         json={"messages": [{"body": b} for b in bodies]})
                    ok = answer.status_code in (200, 201)
                    if not ok:
                        ledger.error(f"send {answer.status_code}")
                except httpx.HTTPError as exc:
                    ok = False
                    ledger.error(f"send {type(exc).__name__}")
                with ledger.lock:
                    (ledger.sent_ok if ok else ledger.sent_unknown).update(bodies)
                if not ok:
                    time.sleep(0.05)

    def _consume(self) -> None:
        ledger = self.ledger
        with httpx.Client(timeout=10) as client:
            while self._running():
                asked = time.monotonic()
                try:
                    answer = client.post(
                        f"{self.base}/v1/queues/{self.queue}/messages/receive",
                        json={"max_messages": 10, "wait_seconds": 0})
                    if answer.status_code != 200:
                        ledger.error(f"receive {answer.status_code}")
                        time.sleep(0.05)
                        continue
                    messages = answer.json()["messages"]
                except httpx.HTTPError as exc:
                    ledger.error(f"receive {type(exc).__name__}")
                    time.sleep(0.05)
                    continue
                handles = {m["receipt_handle"]: m["body"] for m in messages}
                record_deliveries(ledger, list(handles.values()), asked)
                if handles:
                    delete(client, f"{self.base}/v1/queues/{self.queue}", handles, ledger)


def record_deliveries(ledger: Ledger, bodies: list[str], asked: float) -> None:
    """Count deliveries; one asked for after its delete was acknowledged is a duplicate."""
    with ledger.lock:
        for body in bodies:
            ledger.delivered[body] += 1
            acked = ledger.deleted_ok.get(body)
            if acked is not None and acked < asked:
                ledger.redelivered_after_ack.append(body)


def delete(client: httpx.Client, queue_url: str, handles: dict[str, str],
           ledger: Ledger) -> None:
    """Acknowledge; only entries answered `ok` count as acknowledged deletes."""
    try:
        answer = client.post(f"{queue_url}/messages/delete",
                             json={"receipt_handles": list(handles)})
    except httpx.HTTPError as exc:
        ledger.error(f"delete {type(exc).__name__}")
        return
    if answer.status_code != 200:
        ledger.error(f"delete {answer.status_code}")
        return
    now = time.monotonic()
    with ledger.lock:
        for result in answer.json()["results"]:
            if result["status"] == "ok":
                ledger.deleted_ok[handles[result["receipt_handle"]]] = now
            else:
                ledger.errors[f"delete {result['status']}"] += 1


def stats(url: str, queue: str) -> dict[str, int]:
    answer = httpx.get(f"{url}/v1/queues/{queue}", timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["stats"])


def drain(url: str, queue: str, ledger: Ledger, seconds: float = 30.0) -> Counter[str]:
    """Receive and delete everything left (leases of the fault's victims expire first)."""
    drained: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            asked = time.monotonic()
            answer = client.post(f"{url}/v1/queues/{queue}/messages/receive",
                                 json={"max_messages": 100, "wait_seconds": 1})
            assert answer.status_code == 200, answer.text
            messages = answer.json()["messages"]
            if not messages:
                left = stats(url, queue)
                if left["visible"] + left["in_flight"] + left["delayed"] == 0:
                    return drained
                continue
            handles = {m["receipt_handle"]: m["body"] for m in messages}
            record_deliveries(ledger, list(handles.values()), asked)
            drained.update(handles.values())
            delete(client, f"{url}/v1/queues/{queue}", handles, ledger)
    raise AssertionError(f"the queue did not drain in {seconds} s: {stats(url, queue)}")


def reconcile(ledger: Ledger, drained: Counter[str]) -> Report:
    """Compare what clients were told with what the queue held and gave."""
    with ledger.lock:
        seen = set(ledger.delivered)
        return Report(
            acknowledged_sends=len(ledger.sent_ok),
            delivered=sum(ledger.delivered.values()),
            in_flight_at_fault=len(drained),
            lost=len(ledger.sent_ok - seen),
            duplicates_after_ack=len(ledger.redelivered_after_ack),
            acked_delete_came_back=sum(1 for b in drained if b in ledger.redelivered_after_ack),
            phantoms=len(seen - ledger.sent_ok - ledger.sent_unknown),
            drained_twice=sum(1 for n in drained.values() if n > 1))
