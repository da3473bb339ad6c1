"""Per-key concurrency with fairness across keys: `concurrency_key` + `key_concurrency`.

```python
@app.task(concurrency_key=lambda customer_id, **_: customer_id, key_concurrency=2)
async def sync_customer(customer_id: str, **options) -> None: ...
```
At most `key_concurrency` jobs of one key run at once across every worker on every
machine, and one key's backlog does not hold up the others:

- The key is computed at enqueue and stored as the message's group id (standard queues;
  a key that is not 1-128 printable ASCII characters is hashed).
- A worker takes a slot of `key:<task>:<key>` from the database (`broker.limits`, leased
  and renewed on the heartbeat, so a killed worker's slots come back when the lease lapses)
  before it runs the job. When the key is full, the worker *parks* the job: it waits for a
  slot without counting against the worker's receive capacity (up to as many parked jobs
  as that capacity; beyond, a job is given back at once, snoozed: no attempt spent). A job
  of the key that ends here hands its slot to the first parked one; one poller per key
  asks the database for slots freed elsewhere.
- While a key has jobs parked, the worker's receives pass over that key's messages
  (`receive(skip_groups=...)`, one condition in the claim query), so they return the other
  keys' jobs behind a long backlog of one key: BullMQ groups and SQS fair queues give each
  group its turn the same way, by not handing a consumer more of a group it cannot run.
  The price: such a receive walks past the skipped keys' backlog in the claim index.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.worker.rates import Slots

__all__ = ["KeyGate", "check_key_options", "job_key"]

_GROUP = re.compile(r"[\x21-\x7e]{1,128}")  # a message group id: printable ASCII
MAX_KEY_CONCURRENCY = 100_000
REFUSED_SKIP = 0.2  # seconds a key refused for lack of parking room stays passed over
POLL_MAX = 0.1  # the longest pause between a parked key's asks for a slot freed elsewhere


def check_key_options(queue: str, key: Callable[..., str] | None, limit: int | None) -> None:
    """`concurrency_key` and `key_concurrency` come together, on a standard queue."""
    if (key is None) != (limit is None):
        raise InvalidInput("concurrency_key and key_concurrency go together.",
                           field="key_concurrency")
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or \
            not 1 <= limit <= MAX_KEY_CONCURRENCY:
        raise InvalidInput(f"key_concurrency must be an integer from 1 to "
                           f"{MAX_KEY_CONCURRENCY:,}.", field="key_concurrency")
    if queue.endswith(".fifo"):
        raise InvalidInput("A FIFO queue's message groups already run one at a time: "
                           "per-key concurrency is for standard queues.",
                           field="concurrency_key")


def job_key(key: Callable[..., str], args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The job's key as a message group id (hashed when not 1-128 printable ASCII)."""
    text = str(key(*args, **kwargs))
    if _GROUP.fullmatch(text):
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:56]


class KeyGate:
    """Per-key slots of one queue runner: take, park, give back; which keys to skip."""

    def __init__(self, slots: Slots, park_room: int) -> None:
        self._slots = slots
        self.park_room = park_room  # parked jobs at most (their lanes are extra)
        self.parked = 0
        self.opened = asyncio.Event()  # a key stopped being skipped
        self._parked: defaultdict[str, int] = defaultdict(int)  # by group
        self._limits: dict[str, int] = {}  # group -> its task's key_concurrency
        self._refused: dict[str, float] = {}  # group -> skip until (monotonic)
        # Jobs parked for a slot, first come first served: a job of the key that ends
        # here hands its slot to the first (no round trip to give it back and take it).
        self._waiters: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._pollers: dict[str, asyncio.Task[None]] = {}

    def skip_groups(self) -> list[str]:
        """Groups whose messages receives pass over now: those with their share parked
        here, and those lately refused for lack of parking room."""
        now = time.monotonic()
        for group in [g for g, until in self._refused.items() if until <= now]:
            del self._refused[group]
        # A key with jobs waiting here is full: skip it until they have all started
        # (then `opened` wakes the receive loop to fetch more of it).
        return sorted({*self._parked, *self._refused})

    async def enter(self, task: str, group: str, limit: int, room: asyncio.Event) -> bool:
        """Take a slot of the key (True), parking for one while there is room; False: no
        room, give the job back (its group is passed over a while)."""
        slot = f"key:{task}:{group}"
        if await self._slots.try_acquire(slot, limit):
            return True
        if self.parked >= self.park_room:
            self._refused[group] = time.monotonic() + REFUSED_SKIP
            return False
        self._limits[group] = limit
        self._parked[group] += 1
        self.parked += 1
        room.set()  # parked jobs do not count against receives: fetch more
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters[slot]
        waiters.append(handed)
        if slot not in self._pollers:
            self._pollers[slot] = asyncio.create_task(self._poll(slot, limit))
        try:
            await handed
            return True
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():
                await self._slots.release(slot)  # handed over as we were cancelled
            raise
        finally:
            if handed in waiters:
                waiters.remove(handed)
            self.parked -= 1
            self._parked[group] -= 1
            if self._parked[group] <= 0:
                del self._parked[group]
                self._limits.pop(group, None)
                self.opened.set()
            if not waiters:
                self._waiters.pop(slot, None)
            room.set()

    async def _poll(self, slot: str, limit: int) -> None:
        """While jobs wait here for a slot of `slot`, one poller asks the database (with
        backoff) for slots freed elsewhere and hands each to the first in line."""
        pause = 0.02
        try:
            while self._waiters.get(slot):
                await asyncio.sleep(pause)
                if not self._waiters.get(slot):
                    return
                if await self._slots.try_acquire(slot, limit):
                    if not self._hand(slot):
                        await self._slots.release(slot)
                    pause = 0.02
                else:
                    pause = min(pause * 2, POLL_MAX)
        finally:
            self._pollers.pop(slot, None)

    def _hand(self, slot: str) -> bool:
        """Give a held slot of `slot` to the first job waiting for one; False if none."""
        waiters = self._waiters.get(slot)
        while waiters:
            handed = waiters.popleft()
            if not handed.done():
                handed.set_result(None)
                return True
        return False

    async def leave(self, task: str, group: str) -> None:
        """Hand the slot to a job of the key parked here, else give it back."""
        slot = f"key:{task}:{group}"
        if not self._hand(slot):
            await self._slots.release(slot)
