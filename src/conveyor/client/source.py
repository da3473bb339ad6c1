"""`Source`: the part of the broker a worker uses, satisfied by both `Broker` (in-process, on
PostgreSQL or SQLite) and `AsyncClient` (through a server), so a worker keeps the same
guarantees either way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from conveyor.client._models import Grant, JobStatus
from conveyor.flows import Flow, FlowStep, NodeEnd
from conveyor.heartbeats import Heartbeat, WorkerInfo
from conveyor.jobs import CronLease
from conveyor.models import (
    EntryResult,
    Message,
    Queue,
    QueueStats,
    SendEntry,
    SendResult,
    VisibilityEntry,
)

__all__ = ["FlowsOps", "JobsOps", "LimitsOps", "Source", "WorkersOps"]


class LimitsOps(Protocol):
    """Rate limits (GCRA, tokens in chunks) and global concurrency slots with leases."""

    async def take(self, key: str, rate: int, per: float, want: int = 1,
                   burst: int | None = None) -> Grant: ...

    async def penalize(self, key: str, seconds: float) -> None: ...

    async def acquire(self, key: str, limit: int, holder: str, want: int = 1,
                      lease_seconds: int = 60) -> int: ...

    async def renew(self, key: str, holder: str, lease_seconds: int = 60) -> int: ...

    async def release(self, key: str, holder: str, count: int = 1) -> None: ...


class JobsOps(Protocol):
    """Cron tick claims, unique-job claims and job status."""

    async def cron_claim(self, schedule: str, tick_at: int) -> bool: ...

    async def cron_lease(self, schedule: str, tick_at: int,
                         lease_seconds: float = 10.0) -> CronLease: ...

    async def cron_sent(self, schedule: str, tick_at: int) -> None: ...

    async def claim_release(self, key: str, job_id: str) -> bool: ...

    async def status_set_many(self, statuses: Sequence[JobStatus]) -> None: ...

    async def status_get(self, job_id: str) -> JobStatus | None: ...

    async def status_counts(self, queue: str | None = None) -> Mapping[str, int]: ...

    async def cancel(self, job_id: str) -> JobStatus: ...

    async def cancel_requests(self, job_ids: Sequence[str]) -> list[str]: ...


class FlowsOps(Protocol):
    """Flows (`conveyor.flows`): what a worker records when a flow's job ends."""

    async def create(self, steps: Sequence[FlowStep], *, keep_seconds: int = ...
                     ) -> Flow: ...

    async def end_many(self, ends: Sequence[NodeEnd]) -> None: ...

    async def results(self, flow_id: str, node: int) -> list[Any]: ...

    async def get(self, flow_id: str) -> Flow: ...


class WorkersOps(Protocol):
    """Worker heartbeats: beat, stop, and list the live ones."""

    async def beat(self, heartbeat: Heartbeat) -> None: ...

    async def remove(self, worker_id: str) -> bool: ...

    async def list(self) -> list[WorkerInfo]: ...


class Source(Protocol):
    """Queues and messages, plus `limits`, `jobs` and `workers`: everything a worker needs."""

    @property
    def limits(self) -> LimitsOps: ...

    @property
    def jobs(self) -> JobsOps: ...

    @property
    def workers(self) -> WorkersOps: ...

    @property
    def flows(self) -> FlowsOps: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create_queue(self, name: str, attributes: Mapping[str, Any] | None = None
                           ) -> tuple[Queue, bool]: ...

    async def get_queue(self, name: str) -> Queue: ...

    async def update_queue(self, name: str, attributes: Mapping[str, Any]) -> Queue: ...

    async def queue_stats(self, name: str) -> QueueStats: ...

    async def send(self, queue_name: str, entries: Sequence[SendEntry]
                   ) -> list[SendResult]: ...

    async def receive(self, queue_name: str, max_messages: int = 10,
                      visibility_timeout: int | None = None,
                      wait_seconds: int | None = None, *, skip_groups: Sequence[str] = ()
                      ) -> list[Message]: ...

    async def delete(self, queue_name: str, receipt_handles: Sequence[str]
                     ) -> list[EntryResult]: ...

    async def change_visibility(self, queue_name: str, entries: Sequence[VisibilityEntry]
                                ) -> list[EntryResult]: ...

    async def retry(self, queue_name: str, receipt_handle: str, delay_seconds: int,
                    error: str | None = None, *, dead_letter: bool = False,
                    snooze: bool = False) -> EntryResult: ...
