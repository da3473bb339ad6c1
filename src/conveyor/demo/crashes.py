"""`conveyor demo --kill-workers-every SECONDS`: the demo's delivery workers killed with
`kill -9` every few seconds during the run, each replaced at once by a new one.

The promise checked: per kill, lost = 0 and extra copies ≤ the killed process's in-flight
window (`DeliveryOptions.in_flight` per channel), so over a run, extra copies per channel ≤
kills × `in_flight`. The sinks count what arrived; the ledger says how many notifications
were resent after a crash. With kills the delivery workers use a short lease, so a killed
worker's envelopes come back within seconds rather than minutes.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CRASH_VISIBILITY", "Crashes", "WorkerPool"]

CRASH_VISIBILITY = 10
"""Seconds of lease the demo's workers take when they are being killed (default 300)."""


@dataclass
class Crashes:
    """The kills of a run and what they cost, for the report's check."""

    every: float
    in_flight: int
    kills: int = 0
    resent: dict[str, int] = field(default_factory=dict)
    """Resent after a crash, by channel (from the ledger)."""
    extra: dict[str, int] = field(default_factory=dict)
    """Extra copies the sinks received, by channel."""
    next_kill: float = 0.0
    next_count: float = 0.0
    """When (monotonic) the next kill is due, and the next look at the ledger."""

    @property
    def bound(self) -> int:
        """The most extra copies per channel the run may show: kills × in_flight."""
        return self.kills * self.in_flight

    def line(self) -> str:
        """The report's line."""
        return (f"{self.kills} kill -9 of delivery workers (every {self.every:g} s), each "
                f"replaced; resent after a crash (ledger): "
                f"{_by_channel(self.resent)}; extra copies at the sinks: "
                f"{_by_channel(self.extra)}; bound {self.kills} kills x in_flight "
                f"{self.in_flight} = {self.bound:,} per channel")


def _by_channel(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none"


class WorkerPool:
    """The demo's delivery worker processes. Each reports on a queue of its own: a process
    killed while writing to a shared queue could leave it locked or half-written for the
    others; its own queue is simply dropped with it."""

    def __init__(self, ctx: Any, target: Any, args: tuple[Any, ...]) -> None:
        self.ctx = ctx
        self.target = target
        self.args = args
        self.procs: dict[int, Any] = {}
        self.groups: dict[int, tuple[str, ...]] = {}
        self.group_of: dict[int, tuple[str, ...]] = {}
        """Every worker's channels, the killed ones' too (their counts still count)."""
        self.queues: dict[int, Any] = {}
        self.started = 0
        self.kills = 0
        self.exited = 0
        self.delivering: dict[int, float] = {}
        """Live workers that have delivered something, and since when (monotonic): only
        these are killed, the longest delivering first, so every worker does some work
        however slowly a loaded machine starts it."""

    def start(self, group: tuple[str, ...]) -> None:
        """Start one more worker, delivering the channels of `group`."""
        index = self.started
        self.started += 1
        queue = self.ctx.Queue()
        url, channels, options, stop = self.args
        mine = {name: channels[name] for name in group}
        proc = self.ctx.Process(target=self.target, daemon=True,
                                args=(index, url, mine, options, queue, stop))
        proc.start()
        self.procs[index], self.queues[index] = proc, queue
        self.groups[index] = self.group_of[index] = group

    def reports(self) -> list[dict[str, Any]]:
        """Every report waiting from the live workers."""
        got: list[dict[str, Any]] = []
        for index, queue in self.queues.items():
            while True:
                try:
                    report = queue.get_nowait()
                except Exception:  # queue.Empty, or a queue closing at the end
                    break
                got.append(report)
                if index not in self.delivering and (
                        report.get("sent", 0) + report.get("failed", 0)
                        + report.get("skipped", 0)):
                    self.delivering[index] = time.monotonic()
        return got

    def kill_oldest(self) -> None:
        """`kill -9` the worker delivering longest (never one still starting up, or one
        that has delivered nothing yet) and start its replacement."""
        index = min(self.delivering, key=self.delivering.__getitem__)
        del self.delivering[index]
        proc = self.procs.pop(index)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        self.queues.pop(index)
        self.kills += 1
        self.start(self.groups.pop(index))

    def restart_exited(self) -> int:
        """Start a new worker for each one that exited on its own (a replacement that could
        not connect, say), as a supervisor would, up to 10 times in a run (then the demo's
        "every delivery worker exited" check ends it); how many."""
        gone = [i for i, proc in self.procs.items() if not proc.is_alive()]
        gone = gone[:max(0, 10 - self.exited)]
        self.exited += len(gone)
        for index in gone:
            del self.procs[index], self.queues[index]
            self.delivering.pop(index, None)
            self.start(self.groups.pop(index))
        return len(gone)

    def oldest_age(self) -> float:
        """Seconds the longest delivering worker has been delivering."""
        return time.monotonic() - min(self.delivering.values()) if self.delivering else 0.0

    @property
    def live(self) -> list[Any]:
        """The processes not killed."""
        return list(self.procs.values())
