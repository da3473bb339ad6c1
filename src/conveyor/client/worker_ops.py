"""`client.workers`: worker heartbeats over HTTP, async and sync on the same calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from conveyor.client._calls import Call
from conveyor.heartbeats import Heartbeat, WorkerInfo, heartbeat_json, worker_of


def beat(heartbeat: Heartbeat) -> Call[None]:
    """PUT /v1/workers/{id}."""
    return Call("PUT", _path(heartbeat.worker_id), lambda _, d: None,
                heartbeat_json(heartbeat), empty=True)


def remove(worker_id: str) -> Call[bool]:
    """DELETE /v1/workers/{id} (False when it was not listed)."""
    return Call("DELETE", _path(worker_id), lambda status, _: status != 404, empty=True,
                missing_is_none=True)


def list_workers() -> Call[list[WorkerInfo]]:
    """GET /v1/workers."""
    return Call("GET", "/v1/workers", lambda _, d: [worker_of(w) for w in d["workers"]])


def _path(worker_id: str) -> str:
    return f"/v1/workers/{quote(worker_id, safe='')}"


class AsyncWorkers:
    """Worker heartbeats, through a server."""

    def __init__(self, run: Callable[[Call[Any]], Any]) -> None:
        self._run = run

    async def beat(self, heartbeat: Heartbeat) -> None:
        """Record this worker's heartbeat."""
        await self._run(beat(heartbeat))

    async def remove(self, worker_id: str) -> bool:
        """Forget a worker (a clean stop); True when it was listed."""
        removed: bool = await self._run(remove(worker_id))
        return removed

    async def list(self) -> list[WorkerInfo]:
        """Live workers, by start time."""
        found: list[WorkerInfo] = await self._run(list_workers())
        return found


class SyncWorkers:
    """`AsyncWorkers`, blocking."""

    def __init__(self, run: Callable[[Call[Any]], Any]) -> None:
        self._run = run

    def beat(self, heartbeat: Heartbeat) -> None:
        """Record a heartbeat."""
        self._run(beat(heartbeat))

    def remove(self, worker_id: str) -> bool:
        """Forget a worker; True when it was listed."""
        removed: bool = self._run(remove(worker_id))
        return removed

    def list(self) -> list[WorkerInfo]:
        """Live workers, by start time."""
        found: list[WorkerInfo] = self._run(list_workers())
        return found
