"""conveyor: a self-hosted message queue and job system."""

from conveyor.broker.broker import Broker
from conveyor.client import AsyncClient, Client
from conveyor.errors import ConveyorError
from conveyor.models import (
    Body,
    Message,
    MessageAttribute,
    Queue,
    QueueAttributes,
    QueueStats,
    SendEntry,
    SendResult,
    VisibilityEntry,
)
from conveyor.worker import App, Cancel, Retry, Unique

__all__ = [
    "App",
    "AsyncClient",
    "Body",
    "Broker",
    "Cancel",
    "Client",
    "ConveyorError",
    "Message",
    "MessageAttribute",
    "Queue",
    "QueueAttributes",
    "QueueStats",
    "Retry",
    "SendEntry",
    "SendResult",
    "Unique",
    "VisibilityEntry",
]
__version__ = "0.1.0"
