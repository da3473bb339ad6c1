"""Where the demo's CPU time went beyond its own processes: the PostgreSQL backends that
served it (when the server runs on this machine), and the time every process spent
runnable but waiting for a core (other load on the machine).

Both change the reading of a run. Without the backends, a PostgreSQL run looks idle (its
ledger and queue work happens in the server); without the run-queue wait, a run on a
shared, overloaded machine looks like it waits on locks or round trips, when its
processes were ready and the scheduler gave the cores to someone else (measured on the
2-core box: 14 s waiting for every 1 s running at a load average of 15).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import psutil  # type: ignore[import-untyped]

from conveyor.connect import is_postgres_url

if TYPE_CHECKING:
    import asyncpg

__all__ = ["ServerCpu", "run_queue_wait"]

_LOOPBACK = {"localhost", "127.0.0.1", "::1", ""}


def run_queue_wait(pid: int | None = None) -> float:
    """Seconds the threads of a process (default: this one) spent runnable but waiting
    for a core, from /proc/<pid>/task/*/schedstat (0.0 where that is not available)."""
    tasks = Path(f"/proc/{pid or os.getpid()}/task")
    total = 0
    try:
        for task in tasks.iterdir():
            try:
                fields = (task / "schedstat").read_text().split()
            except OSError:
                continue
            if len(fields) >= 2:
                total += int(fields[1])
    except OSError:
        return 0.0
    return total / 1e9


class ServerCpu:
    """CPU-seconds and run-queue wait of the PostgreSQL backends serving one database,
    when the server is on this machine: `sample()` now and then (a backend's time is
    kept as last seen, so one that exits between samples loses at most that interval)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.enabled = is_postgres_url(url) and (parts.hostname or "") in _LOOPBACK
        self._seen: dict[int, tuple[float, float]] = {}
        self._conn: asyncpg.Connection | None = None

    async def sample(self) -> None:
        """Read the CPU times of every backend connected to the database now."""
        if not self.enabled:
            return
        import asyncpg

        try:
            if self._conn is None:
                self._conn = await asyncpg.connect(self.url)
            pids = await self._conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self.enabled = False  # a server elsewhere, or one we may not look at
            return
        for (pid,) in pids:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            self._seen[pid] = (t.user + t.system, run_queue_wait(pid))

    async def close(self) -> None:
        """Close the sampling connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def cpu(self) -> float:
        """CPU-seconds of the backends seen."""
        return sum(c for c, _ in self._seen.values())

    @property
    def waited(self) -> float:
        """Run-queue seconds of the backends seen."""
        return sum(w for _, w in self._seen.values())
