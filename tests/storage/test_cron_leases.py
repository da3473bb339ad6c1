"""Conformance: cron ticks claimed as leases (migration 0029), the same on both dialects."""

from __future__ import annotations

from conveyor.jobs import CronLease
from conveyor.storage.base import Storage

LEASE, WINDOW = 10_000, 240_000


async def test_a_lease_lapses_unless_sent(storage: Storage, t0: int) -> None:
    assert await storage.cron_lease("s", 1, LEASE, WINDOW, t0) == CronLease(True)
    assert await storage.cron_lease("s", 1, LEASE, WINDOW, t0 + 1) == CronLease(False, True)
    assert await storage.cron_lease("s", 2, LEASE, WINDOW, t0 + LEASE) == CronLease(
        True, False, (1,))
    assert await storage.cron_lease("s", 1, LEASE, WINDOW, t0 + LEASE) == CronLease(True)
    await storage.cron_sent("s", 1)
    at = t0 + 3 * LEASE
    assert await storage.cron_lease("s", 1, LEASE, WINDOW, at) == CronLease(False, False, (2,))
    await storage.cron_sent("s", 2)
    assert await storage.cron_lease("s", 3, LEASE, WINDOW, at) == CronLease(True)
    # Past the window a pending claim is neither won nor named.
    late = at + WINDOW
    assert await storage.cron_lease("s", 3, LEASE, WINDOW, late) == CronLease(False, True)
    assert await storage.cron_lease("t", 3, LEASE, WINDOW, late) == CronLease(True)


async def test_a_plain_claim_is_final(storage: Storage, t0: int) -> None:
    assert await storage.cron_claim("s", 1, t0)
    assert await storage.cron_lease("s", 1, LEASE, WINDOW, t0 + WINDOW // 2) == CronLease(
        False, False)
