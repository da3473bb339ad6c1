"""The seam: where a dialect runs the rules as one statement instead of the Python in
`conveyor.storage.limits`, the two must agree exactly.

PostgreSQL takes rate-limit tokens in one upsert (`rate_take`) and grants slots in one
function call (`conveyor_slot_acquire`); SQLite calls `gcra` and `slots_granted`. A long
random sequence of calls runs on each backend against a model built from those functions,
so the PostgreSQL statements are held to the Python (and SQLite to both).
"""

from __future__ import annotations

import random

import pytest

from conveyor.storage.base import (
    RateTakeParams,
    SlotAcquireParams,
    SlotRenewParams,
    Storage,
)
from conveyor.storage.limits import gcra, slots_granted

STEPS = 300


@pytest.mark.parametrize("seed", [1, 2])
async def test_rate_take_follows_gcra(storage: Storage, t0: int, seed: int) -> None:
    rng = random.Random(seed)
    model: dict[str, tuple[float, int]] = {}  # key -> (tat, blocked_until)
    now = t0
    for step in range(STEPS):
        now += rng.choice([0, 0, 1, 7, 50, 333, 1_000, 5_000])
        key = rng.choice(["a", "b", "c"])
        tat, blocked = model.get(key, (0.0, 0))
        if rng.random() < 0.05:
            ms = rng.randint(1, 3_000)
            await storage.rate_penalize(key, ms, now)
            model[key] = (tat, max(blocked, now + ms))
            continue
        # Fractional and whole intervals; bursts from 1 up.
        interval = rng.choice([0.5, 1.0, 3.3333333333333335, 100.0, 250.0, 1_000 / 3])
        burst, want = rng.randint(1, 20), rng.randint(1, 25)
        state = await storage.rate_take(RateTakeParams(key, interval, burst, want, now))
        if blocked > now:
            expected_granted, expected_tat = 0, tat
        else:
            expected_granted, expected_tat = gcra(tat, now, interval, burst, want)
        assert (state.granted, state.blocked_until, state.now) == (
            expected_granted, blocked, now), (step, key)
        assert state.tat == pytest.approx(expected_tat, rel=0, abs=1e-6), (step, key)
        model[key] = (state.tat, blocked)  # carry the stored value, not drift of ours


@pytest.mark.parametrize("seed", [1, 2])
async def test_slot_accounting_follows_slots_granted(storage: Storage, t0: int,
                                                     seed: int) -> None:
    rng = random.Random(seed)
    limit, lease_ms = 4, 1_000
    model: dict[str, tuple[int, int]] = {}  # holder -> (count, expires_at)
    now = t0
    for step in range(STEPS):
        now += rng.choice([0, 0, 10, 100, 400, 1_200])
        holder = rng.choice(["h1", "h2", "h3"])
        count, expires = model.get(holder, (0, 0))
        live = expires > now
        action = rng.choice(["acquire", "acquire", "renew", "release"])
        if action == "acquire":
            want = rng.randint(1, 3)
            others = sum(c for h, (c, e) in model.items() if h != holder and e > now)
            mine = count if live else 0
            expected = slots_granted(limit, others, mine, want)
            got = await storage.slot_acquire(
                SlotAcquireParams("k", holder, limit, want, lease_ms, now))
            assert got == expected, (step, holder)
            if mine + got > 0:
                model[holder] = (mine + got, now + lease_ms)
        elif action == "renew":
            held = await storage.slot_renew(SlotRenewParams("k", holder, lease_ms, now))
            expected = count if live and count > 0 else 0
            assert held == expected, (step, holder)
            if expected:
                model[holder] = (count, now + lease_ms)
        else:
            n = rng.randint(1, 2)
            await storage.slot_release("k", holder, n)
            if holder in model:
                model[holder] = (max(count - n, 0), expires)
        held_live = sum(c for c, e in model.values() if e > now)
        assert held_live <= limit
