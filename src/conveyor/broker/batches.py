"""The halves of `Broker.send` and `Broker.delete` around their storage call, shared with
the operations that write a send or a delete in the same transaction as something else
(`broker.ledger.record_send`, `finish_ack`): one set of checks, limits and wake-ups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.broker import validation as v
from conveyor.errors import InvalidInput
from conveyor.ids import decode_receipt_handle, new_message_ids
from conveyor.models import EntryResult, Queue, SendEntry, SendResult, encode_attributes
from conveyor.storage.base import Lease, MessageSendParams, NewMessages, Storage

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["Outgoing", "decode_leases", "deleted", "lease_result", "plain", "prepare_send",
           "sent"]

STALE = "The receipt handle is stale: the message was received again or is gone."


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A checked batch, ready for the storage."""

    queue: Queue
    params: MessageSendParams
    visible: bool
    """Some message is visible at once (consumers are to be woken)."""


async def prepare_send(broker: Broker, queue_name: str, entries: Sequence[SendEntry],
                       region: str | None, *, bound: bool = False) -> Outgoing:
    """Check a batch against its queue and the quotas, and give it ids. `bound`: written
    in the application's transaction (no wake-up can travel with it)."""
    v.check_batch_size(len(entries))
    queue = await broker.queue(queue_name, region)
    attrs = queue.attributes
    for index, entry in enumerate(entries):
        v.check_send_entry(entry, index, attrs)
    await broker.quotas.check_send(queue, len(entries), broker.now())
    now = broker.now()
    default_delay = attrs.delay_seconds * 1000
    dedup_ids = [v.dedup_id(e, attrs) for e in entries]
    batch = NewMessages(
        ids=new_message_ids(len(entries), now),
        bodies=[e.body.text for e in entries],
        kinds=[e.body.kind for e in entries],
        attributes=[encode_attributes(e.attributes) for e in entries],
        priorities=[e.priority for e in entries],
        delays_ms=[default_delay if e.delay_seconds is None else e.delay_seconds * 1000
                   for e in entries],
        group_ids=[e.group_id for e in entries],
        dedup_ids=dedup_ids,
        dedup_keys=dedup_ids if attrs.deduplication_scope == "queue" else [
            None if d is None else f"{e.group_id}\x1f{d}"
            for e, d in zip(entries, dedup_ids)],
        claims=claims if any(claims := [e.claim for e in entries]) else None)
    visible = 0 in batch.delays_ms
    # The other processes' wake-up travels with the batch when the throttle allows one
    # now (one round trip fewer on the way to a waiting consumer).
    folded = visible and not bound and broker._signal.take(queue.id)
    return Outgoing(queue, MessageSendParams(queue.id, batch, now, attrs.fifo, notify=folded),
                    visible)


def plain(out: Outgoing) -> None:
    """Refuse a batch that cannot share a statement with other writes: a FIFO queue's, or
    one with deduplication ids or claims (those need reads of their own first)."""
    batch = out.params.messages
    if out.params.fifo or batch.claims is not None or any(batch.dedup_keys):
        raise InvalidInput("Only a standard queue's messages without deduplication ids or "
                           "claims can be sent with ledger rows.", field="entries")


async def sent(broker: Broker, out: Outgoing, results: Sequence[SendResult],
               storage: Storage | None = None) -> None:
    """Wake consumers and tell observers after a batch was stored. `storage`: the bound
    storage when written in the application's transaction."""
    queue = out.queue
    if out.params.notify:
        broker.wake(queue.id)
    elif out.visible:
        # In the caller's transaction the NOTIFY is delivered when it commits (never if
        # it rolls back), and this process hears it on its LISTEN connection.
        await (broker.signal(queue.id) if storage is None else storage.signal(queue.id))
    if broker.observers:
        broker._observe("sent", queue, sum(not r.duplicate for r in results))


def decode_leases(receipt_handles: Sequence[str]) -> tuple[list[Lease],
                                                          list[EntryResult | Lease]]:
    """The leases the handles stand for, and per handle its lease or why it is invalid."""
    v.check_batch_size(len(receipt_handles))
    leases: list[Lease] = []
    results: list[EntryResult | Lease] = []
    for handle in receipt_handles:
        try:
            lease = Lease(*decode_receipt_handle(handle))
        except InvalidInput as exc:
            results.append(EntryResult(str(handle)[:200], "invalid", exc.message))
            continue
        leases.append(lease)
        results.append(lease)
    return leases, results


def deleted(broker: Broker, queue: Queue, done: set[Lease]) -> None:
    """Tell observers how many messages a delete removed."""
    if broker.observers and done:
        broker._observe("deleted", queue, len(done))


def lease_result(item: EntryResult | Lease, handle: str, done: set[Lease]) -> EntryResult:
    """A handle's answer: invalid, ok (its lease in `done`), or stale."""
    if isinstance(item, EntryResult):
        return item
    if item in done:
        return EntryResult(handle, "ok")
    return EntryResult(handle, "stale", STALE)
