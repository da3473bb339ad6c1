"""Retention: delete messages past their queue's retention, and let the job system, the
rate limits, worker heartbeats and the delivery ledger expire their old rows."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from conveyor.ids import id_floor
from conveyor.reach import Reach

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

log = logging.getLogger("conveyor.broker")


async def sweep(broker: Broker) -> int:
    """One pass; returns how many messages it deleted.

    Only queues holding messages are visited (their ids from `all_queue_stats`, which a
    server's dashboard keeps fresh anyway), so idle queues cost nothing here however many
    there are."""
    storage = broker.storage
    removed = 0
    now = broker.wall_now() if broker.now() is not None else await storage.now()
    for region in await storage.queue_regions():
        for queue_id in await broker.all_queue_stats(region):
            queue = await storage.queue_get_by_id(queue_id)
            if queue is None:  # deleted meanwhile
                continue
            bound = id_floor(now - queue.attributes.retention_seconds * 1000)
            while (n := await storage.message_expire(queue.id, bound, 5000)):
                removed += n
    await storage.dedup_expire(broker.now(), 10_000)
    while await storage.claim_expire(broker.now(), 10_000) == 10_000:
        pass
    await broker.jobs.expire()
    await broker.flows.expire()
    await broker.limits.expire()
    await broker.workers.expire()
    await broker.ledger.expire()
    await broker.recipients.expire()
    await broker.deliveries.expire()
    return removed


async def sweep_forever(broker: Broker, interval: float) -> None:
    """Sweep every `interval` seconds until cancelled; a database outage is logged as one
    warning and one line when it ends (`conveyor.reach`), not a traceback a sweep."""
    reach = Reach("the database")
    while True:
        await asyncio.sleep(interval)
        asked = reach.now()
        try:
            await sweep(broker)
        except Exception as exc:  # the sweeper must outlive a database hiccup
            reach.error(exc, "the retention sweep failed", logger=log)
        else:
            reach.ok(asked)
