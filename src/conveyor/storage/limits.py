"""The arithmetic of rate limits and concurrency slots, written once for every dialect.

SQLite runs it here, between a read and a write in one `BEGIN IMMEDIATE` transaction.
PostgreSQL runs the same rules inside one statement (`rate_take` in postgres/jobs.sql, and
`conveyor_slot_acquire` of migration 0002), because there many nodes take at once and a
row or advisory lock held across several round trips would cost each take four of them.
`tests/storage/test_seam.py` holds the PostgreSQL statements to these functions.
"""

from __future__ import annotations

import math

GCRA_EPSILON = 1e-6
"""A take never loses a whole token to float rounding at an exact boundary (the
PostgreSQL statement adds the same 1e-6)."""


def gcra(tat: float, now: int, interval_ms: float, burst: int, want: int
         ) -> tuple[int, float]:
    """One GCRA take: (tokens granted, new theoretical arrival time).

    The bucket holds `burst - (max(tat, now) - now) / interval` tokens (a key never used
    has tat 0: a full bucket); the take grants as many of `want` as are whole and moves
    tat on by one interval per token.
    """
    start = max(tat, float(now))
    available = math.floor(burst + GCRA_EPSILON - (start - now) / interval_ms)
    granted = min(want, max(0, available))
    return granted, start + granted * interval_ms


def slots_granted(limit: int, others: int, mine: int, want: int) -> int:
    """How many more slots a holder gets: up to `want`, so that the live slots of the key
    (`others` held by other holders, `mine` by this one) stay at most `limit`."""
    return min(want, max(0, limit - others - mine))
