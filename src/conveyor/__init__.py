"""conveyor: a self-hosted message queue and job system."""

from conveyor.broker.broker import Broker
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

__all__ = [
    "Body",
    "Broker",
    "ConveyorError",
    "Message",
    "MessageAttribute",
    "Queue",
    "QueueAttributes",
    "QueueStats",
    "SendEntry",
    "SendResult",
    "VisibilityEntry",
]
__version__ = "0.1.0"
