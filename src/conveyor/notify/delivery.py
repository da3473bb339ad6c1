"""The delivery loop: envelopes of notifications from the broker, through the ledger and a
channel, with retries, dead letters and suppression.

Built on the broker directly rather than on `conveyor.worker`'s one-job-per-call tasks:
at a million notifications the unit of work is a batch (one ledger read, one rate-limit
take and one ack per batch, one ledger write per chunk sent: its `sending` with the
outcomes of the chunk before). For each channel `lanes`
loops run concurrently in every worker process:

1. receive up to `envelopes` queue messages of `notify-<channel>`;
2. `ledger.statuses` reads their notifications' statuses, changing nothing: a
   `sent`/`failed`/`unknown` one is skipped (a redelivery never sends twice); a `sending`
   one is *in doubt*: a worker handed it to the provider and died before recording the
   answer. It is resent carrying the channel's idempotency or collapse handle (email
   Message-ID, Web Push `Topic`, webhook `Idempotency-Key`), unless its channel is in
   `hold_unknown` (or cannot resend, `Channel.resend_unknown`): then it is recorded
   `unknown` for an operator. Never dropped in silence either way;
3. suppressed recipients (hard bounces, unsubscribes, gone push subscriptions) are skipped;
4. the channel renders; then chunk by chunk, each at most `in_flight / lanes` and only as
   the channel's rate limit (GCRA in the database, across every worker) grants tokens, the
   leases are confirmed (envelopes whose lease was lost are not sent:
   `conveyor.notify.leases`), the chunk is marked `sending` (`ledger.begin`) right before
   it goes to the transport, and its outcomes are recorded (`sent`, or `retrying` until
   step 5 decides) in the lane's next write: with the next chunk's `begin` (one
   transaction), or with step 6's. So the rows a `kill -9` leaves `sending` are only the
   chunks on the wire or just back, one per lane, at most `in_flight` per channel and
   worker process: the bound on extra copies per crash. Notifications claimed but never
   attempted stay `queued`/`retrying` and are delivered as usual when their envelope's
   lease lapses;
5. outcomes: `sent`; transient → `retrying`, redelivered after exponential backoff with
   jitter or the provider's Retry-After (the whole envelope through the broker's `retry`,
   else a new delayed envelope of the failed ones); permanent, or out of attempts →
   `failed` and a dead letter in `notify-<channel>-dlq` carrying the reason; gone →
   also suppressed; a 429 or 503 with Retry-After also penalizes the rate-limit key;
6. `ledger.finish` records the final outcomes of the rest in one write, then the envelopes
   are acked. When nothing is to be written in between (no dead letters, no retries: the
   usual batch), the last chunk's outcomes, those final ones and the acks are one write
   (`ledger.finish_ack`: one transaction on SQLite; on PostgreSQL the outcomes, then the
   acks), so a crash before it leaves the last chunk in doubt, as a crash before its
   own `finish` did.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from conveyor.errors import ConveyorError
from conveyor.ledger import FINAL_STATUSES, DeliveryUpdate, NewDelivery
from conveyor.models import Body, BodyKind, Message, SendEntry
from conveyor.notify.channel import Channel, PayloadTooLarge
from conveyor.notify.delivery_options import DeliveryOptions
from conveyor.notify.leases import LeaseKeeper
from conveyor.notify.models import Envelope, Item
from conveyor.notify.outcomes import Result, throttled
from conveyor.reach import Reach
from conveyor.worker.rates import Rate

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["Deliverer", "DeliveryStats", "dlq_name", "queue_name"]

log = logging.getLogger("conveyor.notify")
RENDER_TURN = 0.002
"""The longest a lane renders before letting the event loop run the other lanes' I/O: a
batch of 800 Web Push messages is ~100 ms of encryption, and every SMTP round trip of the
email lanes in the same process waited behind it."""


def queue_name(channel: str) -> str:
    """The queue a channel's notifications wait in."""
    return f"notify-{channel}"


def dlq_name(channel: str) -> str:
    """Where a channel's failed notifications go, with their reasons."""
    return f"notify-{channel}-dlq"


@dataclass(slots=True)
class DeliveryStats:
    """What a worker did, for progress bars and reports. `latencies_ms`: enqueue to
    provider acceptance of every sent notification."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    suppressed: int = 0
    unknown: int = 0
    resent: int = 0
    """In-doubt notifications (left `sending` by a crash) sent again."""
    lease_lost: int = 0
    batches: int = 0
    render_cpu: float = 0.0
    latencies_ms: array[int] = field(default_factory=lambda: array("q"))
    waits: dict[str, float] = field(default_factory=dict)
    """Lane-seconds by channel and stage (`"email:send"`; idle: receives that found
    nothing; receive, ledger, render, rate, send, ack), summed over lanes."""

    def add_wait(self, channel: str, stage: str, since: float) -> float:
        """Add the time from `since` to now to `channel:stage`; returns now."""
        now = time.perf_counter()
        key = f"{channel}:{stage}"
        self.waits[key] = self.waits.get(key, 0.0) + (now - since)
        return now


class Deliverer:
    """Delivers every channel's queued notifications until `stop()`."""

    def __init__(self, broker: Broker, channels: Mapping[str, Channel],
                 options: DeliveryOptions | None = None) -> None:
        self.broker = broker
        self.channels = dict(channels)
        self.options = options or DeliveryOptions()
        self.stats = DeliveryStats()
        self._stopping = asyncio.Event()
        self._tokens: dict[str, int] = {}
        self.reach = Reach("the database")  # its outage: a few lines, not one a batch

    def stop(self) -> None:
        """Finish the batches in hand, then return from `run`."""
        self._stopping.set()

    async def ensure_queues(self) -> None:
        """Create each channel's queue and dead-letter queue."""
        for name in self.channels:
            await self.broker.create_queue(dlq_name(name), {"retention_seconds": 14 * 86400})
            await self.broker.create_queue(queue_name(name))  # leases are given per receive

    async def run(self) -> None:
        """Run the lanes of every channel until stopped."""
        await self.ensure_queues()
        for channel in self.channels.values():
            await channel.open()
        try:
            lanes = [asyncio.create_task(self._lane(name, channel))
                     for name, channel in self.channels.items()
                     for _ in range(self.options.lanes)]
            if self.options.release_digests:
                from conveyor.notify.digests import DigestReleaser  # built on this module

                # A dead worker's digests come back as soon as its envelopes do.
                lanes.append(asyncio.create_task(DigestReleaser(
                    self.broker, keep_seconds=self.options.keep_seconds,
                    lease_seconds=min(max(1, self.options.visibility_timeout), 3600),
                ).run(self._stopping)))
            await asyncio.gather(*lanes)
        finally:
            for channel in self.channels.values():
                await channel.close()

    async def _lane(self, name: str, channel: Channel) -> None:
        queue = queue_name(name)
        while not self._stopping.is_set():
            asked = self.reach.now()
            try:
                since = time.perf_counter()
                messages = await self.broker.receive(
                    queue, self.options.envelopes, self.options.visibility_timeout,
                    self.options.wait_seconds)
                self.stats.add_wait(name, "receive" if messages else "idle", since)
                if messages:
                    await self.process(name, channel, messages)
            except ConveyorError as exc:
                self.reach.error(exc, "notify %s: a batch failed; its leases will lapse",
                                 name, logger=log)
                await asyncio.sleep(1.0)
            else:
                self.reach.ok(asked)

    # one batch ----------------------------------------------------------------------
    async def process(self, name: str, channel: Channel, messages: Sequence[Message]
                      ) -> None:
        """Deliver the notifications of some received envelopes (steps 2-6), keeping their
        leases meanwhile (`conveyor.notify.leases`)."""
        keeper = LeaseKeeper(self.broker, queue_name(name), messages,
                             self.options.visibility_timeout, self.options.heartbeat_seconds)
        keeper.start()
        try:
            await self._process(name, channel, messages, keeper)
        finally:
            await keeper.stop()

    async def _process(self, name: str, channel: Channel, messages: Sequence[Message],
                       keeper: LeaseKeeper) -> None:
        opts = self.options
        stats = self.stats
        since = time.perf_counter()
        envelopes = [Envelope.loads(m.body.text) for m in messages]
        owners: list[int] = []
        items: list[Item] = []
        for index, env in enumerate(envelopes):
            owners.extend([index] * len(env.items))
            items.extend(env.items)
        before: list[str | None] = [None] * len(items)
        if any(m.receive_count > 1 for m in messages):
            # Received before: its holder may have finished items or died with a chunk on
            # the wire. On a first receive no worker has begun any of its items (the
            # producer enqueues an id once; a retry envelope is sent after its items'
            # outcomes are recorded), so this read is skipped; `_begin` reads the statuses
            # again under the write lock either way and drops the final ones.
            before = []
            for start in range(0, len(items), 1000):
                before += await self.broker.ledger.statuses(
                    [i.id for i in items[start:start + 1000]])
            since = stats.add_wait(name, "ledger", since)
        updates: list[DeliveryUpdate] = []
        live: list[int] = []
        hold = name in opts.hold_unknown or not channel.resend_unknown
        seen: set[str] = set()
        for k, status in enumerate(before):
            if status in FINAL_STATUSES or items[k].id in seen:  # done, or twice in hand
                stats.skipped += 1
            elif status == "sending" and hold:
                updates.append(DeliveryUpdate(items[k].id, "unknown", "held for an operator: "
                               "a worker died after handing it to the provider and before "
                               "recording the answer"))
                stats.unknown += 1
            else:  # never attempted, retrying, or in doubt and resent (counted at `begin`)
                live.append(k)
            seen.add(items[k].id)
        if live:
            blocked = await self.broker.ledger.suppressed(
                name, list({items[k].to for k in live})[:1000])
            if blocked:
                for k in live:
                    if items[k].to in blocked:
                        updates.append(DeliveryUpdate(items[k].id, "failed", "suppressed"))
                        self.stats.suppressed += 1
                live = [k for k in live if items[k].to not in blocked]
            since = stats.add_wait(name, "ledger", since)
        results: dict[int, Result] = {}
        payloads: list[Any] = []
        sendable: list[int] = []
        # Stored templates are read (when stale) before rendering, which never waits.
        await channel.templates.prepare(self.broker, {
            t for k in live if (t := items[k].template) is not None})
        started = time.thread_time()
        turn = time.perf_counter()
        for k in live:
            try:
                payloads.append(channel.render(items[k]))
                sendable.append(k)
            except (PayloadTooLarge, ConveyorError, ValueError, KeyError, TypeError) as exc:
                results[k] = Result.permanent(f"cannot render: {exc}"[:1000])
            if time.perf_counter() - turn >= RENDER_TURN:
                stats.render_cpu += time.thread_time() - started
                await asyncio.sleep(0)
                started, turn = time.thread_time(), time.perf_counter()
        stats.render_cpu += time.thread_time() - started
        since = stats.add_wait(name, "render", since)
        pending: list[DeliveryUpdate] = []  # outcomes of sends, not yet written
        try:
            if sendable:
                results.update(await self._send(name, channel, keeper, items, owners,
                                                 sendable, payloads, pending))
            await self._settle(name, messages, envelopes, owners, items, results,
                               pending + updates, keeper.lost, len(pending))
        except ConveyorError:
            # A write failed (the database went away for a moment) after sends went out:
            # left `sending`, they are in doubt, and the next holder sends them again
            # (an outside probe: 18 extra emails over 8 connection kills, no process
            # died). Their outcomes are known: record them before the leases lapse.
            await self._record(name, pending)
            raise

    async def _record(self, name: str, outcomes: list[DeliveryUpdate]) -> None:
        """Write the outcomes of sends that went out, retrying for a while (up to a third
        of the lease), as a failed batch gives its envelopes back."""
        if not outcomes:
            return
        deadline = time.monotonic() + min(30.0, self.options.visibility_timeout / 3)
        pause = 0.05
        while True:
            try:
                for start in range(0, len(outcomes), 1000):
                    await self.broker.ledger.finish(outcomes[start:start + 1000])
                return
            except ConveyorError as exc:
                if time.monotonic() + pause > deadline:
                    log.error("notify %s: the outcomes of %d sends could not be recorded "
                              "(%s); they will be sent again", name, len(outcomes), exc)
                    return
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def _settle(self, name: str, messages: Sequence[Message],
                      envelopes: list[Envelope], owners: list[int], items: list[Item],
                      results: dict[int, Result], updates: list[DeliveryUpdate],
                      lost: set[int], pending: int) -> None:
        """Record the outcomes (`updates`: the last chunk's first, `pending` of them), dead
        letters and retries, then ack."""
        opts = self.options
        now_ms = int(time.time() * 1000)
        dead: list[dict[str, Any]] = []
        gone: list[tuple[str, str, str]] = []
        again: dict[int, list[tuple[Item, Result]]] = {}
        penalty = 0.0
        for k, result in results.items():
            item = items[k]
            if result.outcome == "sent":  # recorded with the chunk after, or below
                self.stats.latencies_ms.append(now_ms - item.enqueued_at)
                continue
            env = envelopes[owners[k]]
            attempt = env.attempt + messages[owners[k]].receive_count
            if result.outcome == "transient" and attempt < opts.max_attempts:
                # `retrying` with this detail is recorded as `_send` said (or is a render
                # failure's, which is never transient)
                again.setdefault(owners[k], []).append((item, result))
                if throttled(result):
                    penalty = max(penalty, result.retry_after or 0.0)
                continue
            reason = result.detail if result.outcome == "permanent" else (
                f"gave up after {attempt} attempts: {result.detail}")
            updates.append(DeliveryUpdate(item.id, "failed", reason))
            dead.append({"id": item.id, "to": item.to, "error": reason, "item": list(item)})
            if result.gone:
                gone.append((name, item.to, (result.detail or "gone")[:500]))
        # Nothing to write between the outcomes and the acks (no dead letters, no
        # retries: every outcome is final and one per id): the last outcomes and the acks
        # go in one write (`finish_ack`). Otherwise the last chunk's outcomes are written
        # first, as each chunk's are, then those decided here.
        quick = not dead and not again
        parts = [updates[start:start + 1000] for start in range(0, len(updates), 1000)]
        if not quick and pending:
            parts = [updates[:pending]] + [updates[start:start + 1000] for start in
                                           range(pending, len(updates), 1000)]
        last = parts.pop() if quick and parts else []
        since = time.perf_counter()
        for part in parts:
            await self.broker.ledger.finish(part)
        since = self.stats.add_wait(name, "ledger", since)
        if gone:
            await self.broker.ledger.suppress(gone[:1000])
        if penalty and self._rate(name):
            await self.broker.limits.penalize(f"notify:{name}", penalty)
        for start in range(0, len(dead), 1000):
            await self.broker.send(dlq_name(name), [
                SendEntry(Body(orjson.dumps(d).decode(), BodyKind.JSON))
                for d in dead[start:start + 1000]])
        self.stats.failed += len(dead)
        self.stats.sent += sum(1 for r in results.values() if r.outcome == "sent")
        self.stats.batches += 1
        handles = []
        for index, message in enumerate(messages):
            if index in lost:  # another worker holds it now
                continue
            retry = again.get(index)
            if retry is None:
                handles.append(message.receipt_handle)
                continue
            self.stats.retried += len(retry)
            env = envelopes[index]
            delay = self._delay(env.attempt + message.receive_count,
                                max((r.retry_after or 0.0) for _, r in retry))
            if len(retry) == len(env.items):  # all of it: the broker's own retry
                await self.broker.retry(queue_name(name), message.receipt_handle, delay,
                                        retry[0][1].detail)
                continue
            later = Envelope(name, env.attempt + message.receive_count, [i for i, _ in retry])
            await self.broker.send(queue_name(name), [SendEntry(Body(later.dumps()),
                                                                delay_seconds=delay)])
            handles.append(message.receipt_handle)
        if handles:
            await self.broker.ledger.finish_ack(last, queue_name(name), handles)
        elif last:
            await self.broker.ledger.finish(last)
        self.stats.add_wait(name, "ack", since)

    def _delay(self, attempt: int, retry_after: float) -> int:
        """Seconds before the next attempt: Retry-After when given, else exponential
        backoff with full jitter (base, 2 base, 4 base, ... capped)."""
        if retry_after > 0:
            return max(1, round(retry_after))
        ceiling = min(self.options.backoff_max, self.options.backoff_base * 2 ** (attempt - 1))
        return max(1, round(random.uniform(ceiling / 2, ceiling)))

    def _rate(self, name: str) -> Rate | None:
        text = self.channels[name].rate_limit
        return Rate.parse(text) if text else None

    async def _send(self, name: str, channel: Channel, keeper: LeaseKeeper,
                    items: list[Item], owners: list[int], sendable: list[int],
                    payloads: list[Any], outcomes: list[DeliveryUpdate]
                    ) -> dict[int, Result]:
        """Send in chunks of at most `options.chunk`, each as soon as the rate limit allows
        it (so the provider never sees more than the limit's burst at once) and only for
        envelopes whose lease is still ours (`LeaseKeeper.confirm`). Each chunk is marked
        `sending` right before it goes out, in one write with the outcomes of the chunk
        before (written alone if the rate limit makes the lane wait first), so a lane
        never has more than one chunk `sending` and a crash leaves no more than the
        chunks on the wire in doubt. `outcomes` holds those of the sends not yet written
        (the caller's, so that they outlive a failed write); the last chunk's are left
        there: `_settle` writes them next, with the acks when it can."""
        stats = self.stats
        results: dict[int, Result] = {}
        size = max(1, channel.batch_size)
        most = min(self.options.chunk, 1000)  # 1,000: the ledger's batch limit
        done = 0
        while done < len(sendable):
            since = time.perf_counter()
            n = await self._grant(name, min(len(sendable) - done, most), outcomes)
            since = stats.add_wait(name, "rate", since)
            chunk, chunk_payloads = sendable[done:done + n], payloads[done:done + n]
            done += n
            lost = await keeper.confirm()
            if lost:
                # Left as they are (`queued`/`retrying`, never marked): the holder sends them.
                stats.lease_lost += sum(1 for k in chunk if owners[k] in lost)
                keep = [j for j, k in enumerate(chunk) if owners[k] not in lost]
                chunk = [chunk[j] for j in keep]
                chunk_payloads = [chunk_payloads[j] for j in keep]
                log.warning("notify %s: leases of %d envelopes were lost before sending; "
                            "left to their new holder", name, len(lost))
            if not chunk:
                continue
            chunk, chunk_payloads = await self._begin(name, items, chunk, chunk_payloads,
                                                      outcomes)
            outcomes.clear()
            since = stats.add_wait(name, "ledger", since)
            batches = [(chunk[i:i + size], chunk_payloads[i:i + size])
                       for i in range(0, len(chunk), size)]
            answers = await asyncio.gather(*(
                channel.send_many([items[k] for k in ks], ps) for ks, ps in batches))
            since = stats.add_wait(name, "send", since)
            for (ks, _), got in zip(batches, answers):
                for k, result in zip(ks, got):
                    results[k] = result
                    outcomes.append(
                        DeliveryUpdate(items[k].id, "sent", None, result.provider_id)
                        if result.outcome == "sent" else
                        DeliveryUpdate(items[k].id, "retrying", result.detail))
        return results

    async def _begin(self, name: str, items: list[Item], chunk: list[int],
                     chunk_payloads: list[Any], finished: list[DeliveryUpdate]
                     ) -> tuple[list[int], list[Any]]:
        """Mark a chunk `sending` right before it goes out (with the outcomes `finished`
        of the chunk before); drop the ones another worker finished meanwhile and count
        those in doubt (resent)."""
        before = await self.broker.ledger.begin(
            [NewDelivery(items[k].id, name, items[k].to) for k in chunk],
            keep_seconds=self.options.keep_seconds, finished=finished)
        keep: list[int] = []
        for j, status in enumerate(before):
            if status in FINAL_STATUSES:
                self.stats.skipped += 1
                continue
            if status == "sending":
                self.stats.resent += 1
            keep.append(j)
        if len(keep) == len(chunk):
            return chunk, chunk_payloads
        return [chunk[j] for j in keep], [chunk_payloads[j] for j in keep]

    async def _grant(self, name: str, want: int, pending: list[DeliveryUpdate]) -> int:
        """How many sends (1 to `want`) the channel's rate limit allows now, across every
        worker; waits until at least one is, after writing the outcomes `pending` (so
        that none waits on the rate limit unrecorded)."""
        rate = self._rate(name)
        if rate is None:
            return want
        key = f"notify:{name}"
        while True:
            grant = await self.broker.limits.take(key, rate.count, rate.per,
                                                  want=min(want, 10_000, rate.count))
            if grant.granted:
                return grant.granted
            if pending:
                await self.broker.ledger.finish(pending)
                pending.clear()
            await asyncio.sleep(min(max(grant.retry_after, 0.005), 5.0))
