"""`AsyncClient`: the native HTTP API with the in-process `Broker`'s surface, on httpx."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from conveyor.client import _calls as c
from conveyor.client._calls import auth_headers
from conveyor.client._errors import ServerUnavailable
from conveyor.client.flow_ops import AsyncFlows
from conveyor.client.ops import AsyncJobs, AsyncLimits
from conveyor.client.worker_ops import AsyncWorkers
from conveyor.config import DEFAULT_TIMEOUT, DEFAULT_URL
from conveyor.models import (
    EntryResult,
    Message,
    MoveTask,
    PeekedMessage,
    Queue,
    QueueStats,
    SendEntry,
    SendResult,
    VisibilityEntry,
)

T = TypeVar("T")

__all__ = ["AsyncClient"]


class AsyncClient:
    """A conveyor server, used like a `Broker`: same methods, arguments, models, errors.

    `limits` and `jobs` are the rate-limit, concurrency-slot, cron and job-status operations
    a worker needs, so a worker through a server keeps the guarantees of one on the database.
    """

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = DEFAULT_TIMEOUT,
                 headers: Mapping[str, str] | None = None, api_key: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout, headers=auth_headers(headers, api_key),
            transport=transport, limits=httpx.Limits(max_connections=200,
                                                     max_keepalive_connections=50))
        self.limits = AsyncLimits(self.run)
        self.workers = AsyncWorkers(self.run)
        self.jobs = AsyncJobs(self.run)
        self.flows = AsyncFlows(self.run)

    async def start(self) -> None:
        """Nothing to open (connections are made on demand); for symmetry with `Broker`."""

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def run(self, call: c.Call[T]) -> T:
        """Send one call; its parsed answer, or the matching `conveyor.errors` exception."""
        try:
            response = await self._http.request(call.method, call.path,
                                              **c.request_options(call, self.timeout))
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"Cannot reach {self.url}: {exc or type(exc).__name__}") from exc
        return c.answer(call, response.status_code, response.content)

    # queues -------------------------------------------------------------------------
    async def create_queue(self, name: str, attributes: Mapping[str, Any] | None = None
                           ) -> tuple[Queue, bool]:
        """Create a queue; True when created now (see `Broker.create_queue`)."""
        return await self.run(c.create_queue(name, attributes))

    async def get_queue(self, name: str) -> Queue:
        """A queue (its `id` is 0: ids are internal to the server)."""
        return await self.run(c.get_queue(name))

    async def list_queues(self, prefix: str = "", after: str | None = None,
                          limit: int = 1000) -> list[Queue]:
        """Queues by name, optionally starting with `prefix`, paged by `after`."""
        return await self.run(c.list_queues(prefix, after, limit))

    async def update_queue(self, name: str, attributes: Mapping[str, Any]) -> Queue:
        """Change some attributes of a queue (`{"paused": True}` pauses it)."""
        return await self.run(c.update_queue(name, attributes))

    async def delete_queue(self, name: str) -> None:
        """Delete a queue and every message in it."""
        await self.run(c.delete_queue(name))

    async def purge_queue(self, name: str) -> int:
        """Delete every message of a queue; returns how many."""
        return await self.run(c.purge_queue(name))

    async def queue_stats(self, name: str) -> QueueStats:
        """Exact counts for one queue."""
        return await self.run(c.queue_stats(name))

    async def get_queue_with_stats(self, name: str) -> tuple[Queue, QueueStats]:
        """A queue and its exact counts, in one request."""
        return await self.run(c.queue_with_stats(name))

    async def list_queues_with_stats(self, prefix: str = "", after: str | None = None,
                                     limit: int = 1000) -> list[tuple[Queue, QueueStats]]:
        """`list_queues` with each queue's counts, in one request."""
        return await self.run(c.list_queues_with_stats(prefix, after, limit))

    # messages -----------------------------------------------------------------------
    async def send(self, queue_name: str, entries: Sequence[SendEntry]) -> list[SendResult]:
        """Send a batch atomically."""
        return await self.run(c.send(queue_name, entries))

    async def receive(self, queue_name: str, max_messages: int = 10,
                      visibility_timeout: int | None = None,
                      wait_seconds: int | None = None, *, skip_groups: Sequence[str] = ()
                      ) -> list[Message]:
        """Lease up to `max_messages`; with `wait_seconds`, long-poll for the first;
        `skip_groups`: pass over those message groups' messages (`Broker.receive`)."""
        return await self.run(c.receive(queue_name, max_messages, visibility_timeout,
                                        wait_seconds, skip_groups))

    async def delete(self, queue_name: str, receipt_handles: Sequence[str]
                     ) -> list[EntryResult]:
        """Acknowledge messages; a stale handle deletes nothing and says so."""
        return await self.run(c.delete(queue_name, receipt_handles))

    async def change_visibility(self, queue_name: str, entries: Sequence[VisibilityEntry]
                                ) -> list[EntryResult]:
        """Extend leases, or release them with 0."""
        return await self.run(c.change_visibility(queue_name, entries))

    async def retry(self, queue_name: str, receipt_handle: str, delay_seconds: int,
                    error: str | None = None, *, dead_letter: bool = False,
                    snooze: bool = False) -> EntryResult:
        """End a lease and redeliver after `delay_seconds`, keeping the receive count (with
        `dead_letter`: move it to the queue's dead-letter queue now; `snooze`: give back the
        receive that leased it)."""
        return await self.run(c.retry(queue_name, receipt_handle, delay_seconds, error,
                                      dead_letter, snooze))

    async def peek(self, queue_name: str, limit: int = 10, after: str | None = None
                   ) -> list[PeekedMessage]:
        """Look at messages without leasing them, oldest first (page on with `after`)."""
        return await self.run(c.peek(queue_name, limit, after))

    # redrive ------------------------------------------------------------------------
    async def start_redrive(self, queue_name: str, destination: str | None = None,
                            max_per_second: int | None = None) -> MoveTask:
        """Move a dead-letter queue's messages back; the task, finished or still running."""
        return await self.run(c.start_redrive(queue_name, destination, max_per_second))

    async def get_move_task(self, task_id: str) -> MoveTask:
        """A move task (poll it while its status is `running`)."""
        return await self.run(c.get_move_task(task_id))
