"""`Client`: the synchronous twin of `AsyncClient` (same calls, same models, same errors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from conveyor.client import _calls as c
from conveyor.client._calls import auth_headers
from conveyor.client._errors import ServerUnavailable
from conveyor.client.flow_ops import SyncFlows
from conveyor.client.ops import SyncJobs, SyncLimits
from conveyor.client.worker_ops import SyncWorkers
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

__all__ = ["Client"]


class Client:
    """A conveyor server from synchronous code: every `AsyncClient` method, blocking."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = DEFAULT_TIMEOUT,
                 headers: Mapping[str, str] | None = None, api_key: str | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  headers=auth_headers(headers, api_key),
                                  transport=transport)
        self.limits = SyncLimits(self.run)
        self.workers = SyncWorkers(self.run)
        self.jobs = SyncJobs(self.run)
        self.flows = SyncFlows(self.run)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def run(self, call: c.Call[T]) -> T:
        """Send one call; its parsed answer, or the matching `conveyor.errors` exception."""
        try:
            response = self._http.request(call.method, call.path,
                                              **c.request_options(call, self.timeout))
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"Cannot reach {self.url}: {exc or type(exc).__name__}") from exc
        return c.answer(call, response.status_code, response.content)

    # queues -------------------------------------------------------------------------
    def create_queue(self, name: str, attributes: Mapping[str, Any] | None = None
                     ) -> tuple[Queue, bool]:
        """Create a queue; True when created now."""
        return self.run(c.create_queue(name, attributes))

    def get_queue(self, name: str) -> Queue:
        """A queue (its `id` is 0: ids are internal to the server)."""
        return self.run(c.get_queue(name))

    def list_queues(self, prefix: str = "", after: str | None = None, limit: int = 1000
                    ) -> list[Queue]:
        """Queues by name, optionally starting with `prefix`, paged by `after`."""
        return self.run(c.list_queues(prefix, after, limit))

    def update_queue(self, name: str, attributes: Mapping[str, Any]) -> Queue:
        """Change some attributes of a queue."""
        return self.run(c.update_queue(name, attributes))

    def delete_queue(self, name: str) -> None:
        """Delete a queue and every message in it."""
        self.run(c.delete_queue(name))

    def purge_queue(self, name: str) -> int:
        """Delete every message of a queue; returns how many."""
        return self.run(c.purge_queue(name))

    def queue_stats(self, name: str) -> QueueStats:
        """Exact counts for one queue."""
        return self.run(c.queue_stats(name))

    def get_queue_with_stats(self, name: str) -> tuple[Queue, QueueStats]:
        """A queue and its exact counts, in one request."""
        return self.run(c.queue_with_stats(name))

    def list_queues_with_stats(self, prefix: str = "", after: str | None = None,
                               limit: int = 1000) -> list[tuple[Queue, QueueStats]]:
        """`list_queues` with each queue's counts, in one request."""
        return self.run(c.list_queues_with_stats(prefix, after, limit))

    # messages -----------------------------------------------------------------------
    def send(self, queue_name: str, entries: Sequence[SendEntry]) -> list[SendResult]:
        """Send a batch atomically."""
        return self.run(c.send(queue_name, entries))

    def receive(self, queue_name: str, max_messages: int = 10,
                visibility_timeout: int | None = None, wait_seconds: int | None = None
                ) -> list[Message]:
        """Lease up to `max_messages`; with `wait_seconds`, long-poll for the first."""
        return self.run(c.receive(queue_name, max_messages, visibility_timeout,
                                  wait_seconds))

    def delete(self, queue_name: str, receipt_handles: Sequence[str]) -> list[EntryResult]:
        """Acknowledge messages."""
        return self.run(c.delete(queue_name, receipt_handles))

    def change_visibility(self, queue_name: str, entries: Sequence[VisibilityEntry]
                          ) -> list[EntryResult]:
        """Extend leases, or release them with 0."""
        return self.run(c.change_visibility(queue_name, entries))

    def retry(self, queue_name: str, receipt_handle: str, delay_seconds: int,
              error: str | None = None, *, dead_letter: bool = False,
              snooze: bool = False) -> EntryResult:
        """End a lease and redeliver after `delay_seconds`, keeping the receive count (with
        `dead_letter`: move it to the queue's dead-letter queue now; `snooze`: give back the
        receive that leased it)."""
        return self.run(c.retry(queue_name, receipt_handle, delay_seconds, error,
                                dead_letter, snooze))

    def peek(self, queue_name: str, limit: int = 10, after: str | None = None
             ) -> list[PeekedMessage]:
        """Look at messages without leasing them, oldest first (page on with `after`)."""
        return self.run(c.peek(queue_name, limit, after))

    # redrive ------------------------------------------------------------------------
    def start_redrive(self, queue_name: str, destination: str | None = None,
                      max_per_second: int | None = None) -> MoveTask:
        """Move a dead-letter queue's messages back; the task, finished or still running."""
        return self.run(c.start_redrive(queue_name, destination, max_per_second))

    def get_move_task(self, task_id: str) -> MoveTask:
        """A move task (poll it while its status is `running`)."""
        return self.run(c.get_move_task(task_id))
