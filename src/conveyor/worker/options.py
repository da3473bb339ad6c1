"""How a worker process runs: `WorkerOptions` (see `conveyor.worker.runner`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SERVER_LONG_POLL", "WorkerOptions"]

# Long-poll wait through a server: the longest the native API allows.
SERVER_LONG_POLL = 20


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker process runs (see `conveyor.worker.runner`)."""

    queues: Sequence[str] | None = None
    batch_size: int = 100
    # None: 1 s in-process (the broker wakes a waiting receive on arrival either way), 20 s
    # through a server, where each poll is an HTTP request and a log line.
    wait_seconds: int | None = None
    shutdown_grace: float = 30.0
    scheduler: bool = True
    holder: str | None = None
    # How often the worker reports itself (`broker.workers`); None: never. It is forgotten
    # `heartbeat_ttl` after its last beat (None: three intervals).
    heartbeat_interval: float | None = 5.0
    heartbeat_ttl: float | None = None
    # How often the worker asks which of its jobs were cancelled from outside (one query
    # for all of them; none while it holds no job); None: never.
    cancel_interval: float | None = 1.0
