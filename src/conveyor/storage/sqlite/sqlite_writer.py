"""Counters of SQLite's one write lock, per process.

SQLite lets one connection write at a time; the others' `BEGIN IMMEDIATE` waits in the
busy handler, which sleeps 1, 2, 5, 10, ... up to 100 ms between retries. How long each
process waits for the lock and holds it says whether that one writer is a bottleneck (the
demo prints it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WriteLockStats:
    """This process's write transactions on SQLite files: how many, and the seconds spent
    getting the write lock (`BEGIN IMMEDIATE`), holding it (to `COMMIT`), and running on a
    CPU while holding it (the rest of `held` is waiting: for a core, for the GIL, for I/O)."""

    transactions: int = 0
    waited: float = 0.0
    held: float = 0.0
    on_cpu: float = 0.0


WRITE_LOCK = WriteLockStats()
"""One per process: every SQLite storage of the process counts into it (cheap: two clock
reads a transaction, no lock, since each storage writes from its one thread)."""
