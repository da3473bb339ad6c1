"""Python clients for a conveyor server: `AsyncClient` and `Client` have the in-process
`Broker`'s surface (method names, arguments, models, `conveyor.errors`), plus `limits` and
`jobs`. `Source` is the protocol a worker consumes; `Broker` and `AsyncClient` satisfy it."""

from conveyor.client._errors import ServerUnavailable
from conveyor.client._models import Grant, JobStatus
from conveyor.client.async_client import AsyncClient
from conveyor.client.source import JobsOps, LimitsOps, Source
from conveyor.client.sync_client import Client

__all__ = [
    "AsyncClient",
    "Client",
    "Grant",
    "JobStatus",
    "JobsOps",
    "LimitsOps",
    "ServerUnavailable",
    "Source",
]
