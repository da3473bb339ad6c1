"""One dead letter at a time: move a message back to the queue it came from, or delete it.

The dashboard's dead-letter table offers both per message (the whole queue's redrive is
`broker.redrive`). A message is found by its id: a peek from just below that id (message
ids order as their 128-bit numbers on both backends) returns it first if it is there.
Its source is the queue the broker moved it from, else the `conveyor-source-queue`
attribute the worker sets when it copies a message to `<queue>-dlq` itself.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from conveyor.broker import validation as v
from conveyor.errors import Conflict, InvalidInput, QueueNotFound
from conveyor.models import PeekedMessage
from conveyor.storage.base import MessagePeekParams

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["ERROR_ATTRIBUTE", "SOURCE_ATTRIBUTE", "delete_message", "error_of",
           "redrive_message", "source_of"]

SOURCE_ATTRIBUTE = "conveyor-source-queue"
ERROR_ATTRIBUTE = "conveyor-error"


async def redrive_message(broker: Broker, queue_name: str, message_id: str) -> str:
    """Move one message of a dead-letter queue back to its source queue, receive count
    reset (as a redrive does); returns the source's name. 409 `conflict` when the message
    is not there (or in flight), 422 when it names no source, 404 when the source is
    gone. A refusal moves nothing."""
    queue = await broker.queue(queue_name)
    found = await _find(broker, queue.id, message_id)
    source_name = source_of(found)
    if not source_name:
        raise InvalidInput(f"Message {found.id} names no source queue (it was sent to "
                           f"{queue_name} directly), so it cannot be redriven.",
                           field="message_id")
    try:
        source = await broker.queue(source_name)
    except QueueNotFound:
        raise QueueNotFound(f"Message {found.id}'s source queue {source_name!r} no longer "
                            "exists.") from None
    moved = await broker.storage.message_move_ids(queue.id, source.id, [found.id],
                                                  broker.now())
    if not moved:
        raise Conflict(f"Message {found.id} is in flight (being received) right now; try "
                       "again when its lease ends.")
    await broker.signal(source.id)
    return source.name


def source_of(message: PeekedMessage) -> str | None:
    """The queue a dead letter came from: the one the broker moved it from, else the
    `conveyor-source-queue` attribute of a worker's copy (any body, job or not); None for
    a message sent to the queue directly."""
    if message.source_queue is not None:
        return message.source_queue
    named = message.attributes.get(SOURCE_ATTRIBUTE)
    return named.value if named is not None and isinstance(named.value, str) \
        and named.value else None


def error_of(message: PeekedMessage) -> str | None:
    """Why a dead letter is here: the error recorded with it, else the `conveyor-error`
    attribute of a worker's copy."""
    named = message.attributes.get(ERROR_ATTRIBUTE)
    return message.last_error or (named.value if named is not None
                                  and isinstance(named.value, str) else None)


async def delete_message(broker: Broker, queue_name: str, message_id: str) -> None:
    """Delete one message of a queue (not while in flight). 409 `conflict` when it is not
    there or in flight."""
    queue = await broker.queue(queue_name)
    message_id = v.check_message_id(message_id, "message_id")
    deleted = await broker.storage.message_delete_ids(queue.id, [message_id], broker.now())
    if not deleted:
        raise Conflict(f"Message {message_id} is not in {queue_name} (gone already) or is "
                       "in flight right now.")


async def _find(broker: Broker, queue_id: int, message_id: str) -> PeekedMessage:
    message_id = v.check_message_id(message_id, "message_id")
    below = uuid.UUID(message_id).int - 1
    after = str(uuid.UUID(int=below)) if below >= 0 else None
    peeked = await broker.storage.message_peek(
        MessagePeekParams(queue_id, 1, after, broker.now()))
    if not peeked or peeked[0].id != message_id:
        raise Conflict(f"Message {message_id} is not in this queue (redriven, deleted or "
                       "expired already).")
    return peeked[0]
