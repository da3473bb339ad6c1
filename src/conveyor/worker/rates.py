"""Rate limits held in the database, taken in chunks, and global concurrency slots.

The algorithm (GCRA) and its storage are the broker's (`limits.take`); here each worker keeps
the tokens of its last chunk and asks again only when they run out, so a busy worker makes
one round trip per chunk rather than per job. Unused tokens expire: holding them longer would
let a worker that was idle spend a burst later.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from dataclasses import dataclass

from conveyor.client.source import LimitsOps
from conveyor.errors import InvalidInput

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*(s|sec|m|min|h|hour|d|day)?\s*$")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400,
          "day": 86400, None: 1}


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` per `per` seconds."""

    count: int
    per: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`"300/m"`, `"50/10s"`, `"5/s"`, `"1000/h"`, `"10/2.5s"`."""
        match = _RATE.match(text)
        if not match or int(match.group(1)) < 1:
            raise InvalidInput(f"Bad rate {text!r}: write N/[k](s|m|h), e.g. 300/m or 50/10s.",
                               field="rate_limit")
        per = float(match.group(2) or 1) * _UNITS[match.group(3)]
        if per <= 0:
            raise InvalidInput(f"Bad rate {text!r}: the period must be positive.",
                               field="rate_limit")
        return cls(int(match.group(1)), per)

    @property
    def chunk(self) -> int:
        """Tokens a worker takes at once: a tenth of the rate, at least 1, at most 50."""
        return max(1, min(50, self.count // 10))

    @property
    def sustained(self) -> int:
        """The steady rate asked of the bucket, so that every window holds, not only the
        long run: a bucket of r tokens per `per` seconds holding at most b at once hands
        out at most b + r - 1 in any window of `per` seconds, so r = count - chunk + 1 with
        b = chunk keeps each window within `count` ("50/10s" is never 51 in any 10 s)."""
        return max(1, self.count - self.chunk + 1)

    def __str__(self) -> str:
        return f"{self.count}/{self.per:g}s"


class RateLimiter:
    """Tokens for rate-limited keys, taken from `limits` in chunks and spent locally."""

    def __init__(self, limits: LimitsOps, *, max_wait: float = 1.0) -> None:
        self._limits = limits
        self._max_wait = max_wait
        self._tokens: dict[str, tuple[int, float]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _spend_local(self, key: str) -> bool:
        held = self._tokens.get(key)
        if held is None or held[0] <= 0 or held[1] < time.monotonic():
            return False
        self._tokens[key] = (held[0] - 1, held[1])
        return True

    async def take(self, key: str, rate: Rate) -> None:
        """Wait until one token of `key` is ours."""
        while not self._spend_local(key):
            async with self._locks[key]:
                if self._spend_local(key):
                    return
                grant = await self._limits.take(key, rate.sustained, rate.per,
                                                want=rate.chunk, burst=rate.chunk)
                if grant.granted > 0:
                    # Tokens are slices of the schedule: spend them within one interval.
                    lifetime = max(rate.per / rate.count * grant.granted, 0.05)
                    self._tokens[key] = (grant.granted - 1, time.monotonic() + lifetime)
                    return
                await asyncio.sleep(min(max(grant.retry_after, 0.005), self._max_wait))

    async def penalize(self, key: str, seconds: float) -> None:
        """Hold `key` back everywhere for `seconds` (a provider answered 429)."""
        self._tokens.pop(key, None)
        await self._limits.penalize(key, seconds)


class Slots:
    """Global concurrency: slots of a key shared by every worker, leased to this holder."""

    def __init__(self, limits: LimitsOps, holder: str, *, lease_seconds: int = 60) -> None:
        self._limits = limits
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.held: defaultdict[str, int] = defaultdict(int)

    async def acquire(self, key: str, limit: int) -> None:
        """Wait for one of `limit` slots of `key`."""
        pause = 0.02
        while True:
            got = await self._limits.acquire(key, limit, self.holder, 1, self.lease_seconds)
            if got > 0:
                self.held[key] += got
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def try_acquire(self, key: str, limit: int) -> bool:
        """One of `limit` slots of `key` if one is free now (one round trip)."""
        got = await self._limits.acquire(key, limit, self.holder, 1, self.lease_seconds)
        if got > 0:
            self.held[key] += got
            return True
        return False

    async def release(self, key: str) -> None:
        """Give one slot of `key` back."""
        self.held[key] -= 1
        if self.held[key] <= 0:  # per-key slots come and go: keep only the held ones
            del self.held[key]
        await self._limits.release(key, self.holder, 1)

    async def renew(self) -> None:
        """Extend the lease of every slot this holder has (the heartbeat)."""
        for key, count in list(self.held.items()):
            if count > 0:
                await self._limits.renew(key, self.holder, self.lease_seconds)
