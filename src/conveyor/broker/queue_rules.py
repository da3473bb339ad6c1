"""Checks a queue's attributes need beyond their own bounds: its dead-letter queue exists
and matches it, and the storage supports what it asks for; and which queues name a queue
as their dead-letter queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.errors import InvalidAttribute, QueueNotFound, Unsupported
from conveyor.models import Queue, QueueAttributes

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker
    from conveyor.storage.base import Storage


async def check_dead_letter(broker: Broker, region: str, name: str,
                            attrs: QueueAttributes) -> None:
    """The dead-letter queue `attrs` name exists and is of the same kind and durability."""
    if attrs.dead_letter_queue is None:
        return
    try:
        dlq = await broker.queue(attrs.dead_letter_queue, region)
    except QueueNotFound:
        raise InvalidAttribute(
            f"The dead-letter queue {attrs.dead_letter_queue!r} does not exist.",
            field="dead_letter_queue") from None
    if dlq.attributes.fifo != attrs.fifo:
        raise InvalidAttribute(
            "A dead-letter queue must be of the same kind (FIFO or standard) as its "
            "source.", field="dead_letter_queue")
    if dlq.attributes.durability != attrs.durability:
        raise InvalidAttribute(
            "A dead-letter queue must have the same durability as its source.",
            field="dead_letter_queue")


def check_supported(storage: Storage, attrs: QueueAttributes) -> None:
    """Unlogged queues exist only on PostgreSQL."""
    if attrs.durability == "unlogged" and storage.dialect != "postgresql":
        raise Unsupported("durability 'unlogged' needs PostgreSQL; SQLite queues are "
                          "always logged.")


async def dead_letter_sources(broker: Broker, name: str, region: str | None = None
                              ) -> list[Queue]:
    """Queues of the region whose dead-letter queue is `name`, by name."""
    return [q for q in await broker.all_queues(region=region)
            if q.attributes.dead_letter_queue == name]
