"""The driver conformance suite's fixtures: a storage opened on each backend in turn.

The tests here drive `conveyor.storage.base.Storage` directly, with no broker in between,
and pass `now` explicitly (the test clock), so both dialects must give the same answers to
the same calls. A new storage method gets its test here, run on both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from conveyor.clock import ManualClock
from conveyor.ids import new_message_ids
from conveyor.models import BodyKind, Queue, QueueAttributes, dumps_json
from conveyor.storage.base import MessageSendParams, NewMessages, QueueRow, Storage
from conveyor.storage.factory import storage_from_url

REGION = "us-east-1"


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    """The backend's driver, opened (migrated) on a fresh database."""
    opened = storage_from_url(database_url)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def second(database_url: str) -> AsyncIterator[Storage]:
    """Another driver on the same database (its own connections, as another process)."""
    opened = storage_from_url(database_url)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def t0(clock: ManualClock) -> int:
    """The test's "now" in ms, a month away from every other test's."""
    return clock()


async def make_queue(storage: Storage, name: str, now: int, **attributes: object) -> Queue:
    """A queue with these attributes (the rest SQS defaults)."""
    attrs = QueueAttributes(fifo=name.endswith(".fifo"), **attributes)  # type: ignore[arg-type]
    queue, created = await storage.queue_create(
        QueueRow(REGION, name, dumps_json(attrs.to_json()), attrs.paused), now)
    assert created
    return queue


def batch(now: int, bodies: Sequence[str], *, dedup: Sequence[str | None] | None = None,
          groups: Sequence[str | None] | None = None,
          delays_ms: Sequence[int] | None = None,
          priorities: Sequence[int] | None = None) -> NewMessages:
    """A batch of text messages with fresh ids of the time `now`."""
    n = len(bodies)
    dedup_ids = list(dedup) if dedup is not None else [None] * n
    group_ids = list(groups) if groups is not None else [None] * n
    return NewMessages(
        ids=new_message_ids(n, now), bodies=list(bodies), kinds=[BodyKind.TEXT] * n,
        attributes=[None] * n, priorities=list(priorities or [0] * n),
        delays_ms=list(delays_ms or [0] * n), group_ids=group_ids, dedup_ids=dedup_ids,
        dedup_keys=list(dedup_ids))


async def send(storage: Storage, queue: Queue, now: int, bodies: Sequence[str],
               **options: object) -> list[str]:
    """Send `bodies` to `queue`; the ids stored (first ids for duplicates)."""
    made = batch(now, bodies, **options)  # type: ignore[arg-type]
    results = await storage.message_send_many(
        MessageSendParams(queue.id, made, now, queue.attributes.fifo))
    return [r.id for r in results]


