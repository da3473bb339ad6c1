"""The delivery ledger as a broker operation (`broker.ledger`): what makes a notification go
out at most once per delivery id, and the suppression list.

A notifier records `queued` when it enqueues (`record`); a delivery worker reads the
statuses of the batch it received (`statuses`, so that finished ones are skipped), marks
each chunk `sending` right before handing it to the provider (`begin`, which answers with
each row's previous status) and records the chunk's outcomes right after (`finish`). So a
row is `sending` only while its bytes may be on the wire: after a crash, the rows left
`sending` are exactly the chunk in flight, and a resend of one is counted (`resent`).
Rows expire `keep_seconds` after they were made (default 7 days); the broker's sweeper
deletes them. Inputs are checked here, once; storage runs thin SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.broker import batches, channels
from conveyor.broker import validation as v
from conveyor.errors import InvalidInput, TooManyEntries
from conveyor.ledger import (
    DELIVERY_STATUSES,
    Delivery,
    DeliveryUpdate,
    NewDelivery,
    Suppression,
)
from conveyor.models import EntryResult, SendEntry, SendResult
from conveyor.storage.base import DeliveryPutParams

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["DEFAULT_KEEP_SECONDS", "Ledger"]

DEFAULT_KEEP_SECONDS = 7 * 86_400
MAX_KEEP_SECONDS = 365 * 86_400
MAX_ID = 200
MAX_ADDRESS = 2048
MAX_ERROR = 4000
_SWEEP_BATCH = 10_000


class Ledger:
    """Delivery rows and suppressions shared by every worker (`broker.ledger`)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def record(self, rows: Sequence[NewDelivery], *, status: str = "queued",
                     keep_seconds: int = DEFAULT_KEEP_SECONDS) -> list[bool]:
        """Record notifications (up to 1,000) as `status`; ids already known keep theirs.
        Returns, per row, whether it is new (a notifier enqueues only those)."""
        checked = _rows(rows)
        _status(status)
        keep = _keep(keep_seconds)
        if not checked:
            return []
        if len({r.delivery_id for r in checked}) != len(checked):
            raise InvalidInput("A batch must not repeat a delivery id.", field="delivery_id")
        return await self._broker.storage.delivery_put_many(
            DeliveryPutParams(checked, status, keep * 1000, self._broker.now()))

    async def statuses(self, delivery_ids: Sequence[str]) -> list[str | None]:
        """Each notification's status (None: never recorded), in order, changing nothing."""
        if len(delivery_ids) > v.MAX_BATCH:
            raise TooManyEntries(f"A batch holds at most {v.MAX_BATCH} ids.")
        for index, delivery_id in enumerate(delivery_ids):
            _text("delivery_id", delivery_id, MAX_ID, index)
        if not delivery_ids:
            return []
        return await self._broker.storage.delivery_statuses(list(delivery_ids))

    async def begin(self, rows: Sequence[NewDelivery], *,
                    keep_seconds: int = DEFAULT_KEEP_SECONDS,
                    finished: Sequence[DeliveryUpdate] = ()) -> list[str | None]:
        """Mark notifications `sending` just before the provider call; returns each one's
        previous status (None: never recorded). Those that were `sent`, `failed` or
        `unknown` are left as they were and must not be sent; `sending` means an earlier
        attempt may or may not have reached the provider (this one is counted a resend).
        `finished`: outcomes of other notifications (the chunk before), recorded in the
        same write as by `finish`."""
        checked = _rows(rows)
        keep = _keep(keep_seconds)
        done = _updates(finished)
        if {u.delivery_id for u in done} & {r.delivery_id for r in checked}:
            raise InvalidInput("A notification cannot be finished and begun at once.",
                               field="finished")
        if not checked:
            await self.finish(done)
            return []
        storage, now = self._broker.storage, self._broker.now()
        # A repeated id in one batch: begin it once; the repeats see it as `sending`.
        firsts = list({r.delivery_id: r for r in reversed(checked)}.values())[::-1]
        before = await (storage.delivery_finish_begin(done, firsts, keep * 1000, now) if done
                        else storage.delivery_begin_many(firsts, keep * 1000, now))
        if len(firsts) == len(checked):
            return before
        first = dict(zip((r.delivery_id for r in firsts), before))
        seen: set[str] = set()
        out: list[str | None] = []
        for r in rows:
            out.append("sending" if r.delivery_id in seen else first[r.delivery_id])
            seen.add(r.delivery_id)
        return out

    async def finish(self, updates: Sequence[DeliveryUpdate]) -> None:
        """Record outcomes (up to 1,000): `sent` with the provider's id, `retrying`,
        `failed` or `unknown` with the error."""
        checked = _updates(updates)
        if checked:
            await self._broker.storage.delivery_finish_many(checked, self._broker.now())

    async def record_send(self, rows: Sequence[NewDelivery], queue_name: str,
                          entries: Sequence[SendEntry], *, status: str = "queued",
                          keep_seconds: int = DEFAULT_KEEP_SECONDS
                          ) -> tuple[list[bool], list[SendResult]]:
        """`record` and `broker.send` in one transaction, when every row is new: returns
        (all True, the send's results). When some row is recorded already nothing is
        written: returns which rows are new and no results (the caller sends the
        messages of the new ones again). A standard queue's messages without
        deduplication ids or claims (the notifier's envelopes)."""
        checked = _rows(rows)
        _status(status)
        keep = _keep(keep_seconds)
        if len({r.delivery_id for r in checked}) != len(checked):
            raise InvalidInput("A batch must not repeat a delivery id.", field="delivery_id")
        broker = self._broker
        out = await batches.prepare_send(broker, queue_name, entries, None)
        batches.plain(out)
        new, results = await broker.storage.delivery_put_send(
            DeliveryPutParams(checked, status, keep * 1000, out.params.now), out.params)
        if results:
            await batches.sent(broker, out, results)
        return new, results

    async def finish_ack(self, updates: Sequence[DeliveryUpdate], queue_name: str,
                         receipt_handles: Sequence[str]) -> list[EntryResult]:
        """`finish`, then `broker.delete` of the handles: in one transaction where the
        storage can, never the acks without the outcomes."""
        checked = _updates(updates)
        leases, results = batches.decode_leases(receipt_handles)
        broker = self._broker
        queue = await broker.queue(queue_name)
        deleted = await broker.storage.delivery_finish_delete(checked, broker.now(),
                                                              queue.id, leases)
        batches.deleted(broker, queue, deleted)
        return [batches.lease_result(r, h, deleted) for r, h in zip(results, receipt_handles)]

    async def get(self, delivery_id: str) -> Delivery | None:
        """A notification's row, or None when unknown or expired."""
        _text("delivery_id", delivery_id, MAX_ID)
        return await self._broker.storage.delivery_get(delivery_id, self._broker.now())

    async def counts(self, channel: str | None = None) -> dict[str, dict[str, int]]:
        """How many notifications are in each status, by channel (every status listed);
        an unknown `channel` is `InvalidInput` (`conveyor.broker.channels`)."""
        if channel is not None:
            await channels.check_channel(self._broker, channel)
        found = await self._broker.storage.delivery_counts(channel, self._broker.now())
        return {ch: {s: by.get(s, 0) for s in DELIVERY_STATUSES}
                for ch, by in sorted(found.items())}

    async def resent(self, channel: str | None = None) -> dict[str, int]:
        """How many notifications were resent after a crash left them in doubt, by
        channel (channels with none are left out); an unknown `channel` is `InvalidInput`."""
        if channel is not None:
            await channels.check_channel(self._broker, channel)
        found = await self._broker.storage.delivery_resent_counts(channel, self._broker.now())
        return dict(sorted(found.items()))

    async def expire(self, now: int | None = None) -> int:
        """Delete rows past their keep time; called by `Broker.sweep`."""
        storage = self._broker.storage
        at = self._broker.now() if now is None else now
        removed = 0
        while (n := await storage.delivery_expire(at, _SWEEP_BATCH)):
            removed += n
            if n < _SWEEP_BATCH:
                break
        return removed

    # suppression --------------------------------------------------------------------
    async def suppress(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Add (channel, address, reason) rows (up to 1,000): a hard bounce, an
        unsubscribe, a gone push subscription. The first reason given is kept. An email
        address is listed lower-cased (`channels.suppression_key`)."""
        if len(rows) > v.MAX_BATCH:
            raise TooManyEntries(f"A batch holds at most {v.MAX_BATCH} addresses.")
        keyed: dict[tuple[str, str], tuple[str, str, str]] = {}
        for index, (channel, address, reason) in enumerate(rows):
            _text("channel", channel, MAX_ID, index)
            _text("address", address, MAX_ADDRESS, index)
            _text("reason", reason, MAX_ERROR, index)
            # Email addresses are kept lower-cased (`channels.suppression_key`); spellings
            # of one address in a batch become one row with the first reason given.
            key = (channel, channels.suppression_key(channel, address))
            _text("address", key[1], MAX_ADDRESS, index)  # lower-casing may lengthen it
            keyed.setdefault(key, (*key, reason))
        if keyed:
            await self._broker.storage.suppression_add_many(list(keyed.values()),
                                                            self._broker.now())

    async def add_suppression(self, channel: str, address: str,
                              reason: str = "unsubscribed") -> None:
        """Suppress one address a person or an application names (`POST
        /v1/suppressions`), checked first: a known channel, an address that channel sends
        to, a one-line reason (`conveyor.broker.channels`). `suppress` takes what workers
        and providers report as it comes."""
        await channels.check_channel(self._broker, channel)
        channels.check_address(channel, address)
        channels.check_line("reason", reason, MAX_ERROR)
        await self.suppress([(channel, address, reason)])

    async def suppressed(self, channel: str, addresses: Sequence[str]) -> set[str]:
        """Which of `addresses` (up to 1,000) the channel must skip, spelled as given: an
        email address is compared regardless of letter case (`channels.suppression_key`;
        a row stored with upper case before that rule matches its own spelling only)."""
        _text("channel", channel, MAX_ID)
        if len(addresses) > v.MAX_BATCH:
            raise TooManyEntries(f"A batch holds at most {v.MAX_BATCH} addresses.")
        if not addresses:
            return set()
        spellings: dict[str, list[str]] = {}
        for address in addresses:
            # The spelling as given too: a row stored before the rule, in its own case,
            # still stops the address it was stored as.
            for key in {channels.suppression_key(channel, address), address}:
                spellings.setdefault(key, []).append(address)
        found = await self._broker.storage.suppression_find(channel, list(spellings))
        return {a for key in found for a in spellings.get(key, ())}

    async def unsuppress(self, channel: str, address: str) -> bool:
        """Take an address off a channel's list; True when it was listed. An email
        address in any letter case removes its (lower-cased) row. An unknown `channel` is
        `InvalidInput`, as for adding and listing (it was a "not listed")."""
        await channels.check_channel(self._broker, channel)
        _text("address", address, MAX_ADDRESS)
        key = channels.suppression_key(channel, address)
        removed = await self._broker.storage.suppression_remove(channel, key)
        if key != address:  # a row stored before the rule, in the case given
            removed = await self._broker.storage.suppression_remove(channel, address) or removed
        return removed

    async def suppressions(self, channel: str | None = None, after: str | None = None,
                           limit: int = 100) -> list[Suppression]:
        """Listed addresses by channel and address; page with `after` =
        `f"{channel}\\x1f{address}"` of the last one. An unknown `channel` is
        `InvalidInput`."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000.", field="limit")
        if channel is not None:
            await channels.check_channel(self._broker, channel)
        return await self._broker.storage.suppression_list(channel, after, limit)


def _rows(rows: Sequence[NewDelivery]) -> list[NewDelivery]:
    if len(rows) > v.MAX_BATCH:
        raise TooManyEntries(f"A batch holds at most {v.MAX_BATCH} notifications, "
                             f"not {len(rows)}.")
    out = [NewDelivery(*r) for r in rows]
    for index, (did, channel, recipient) in enumerate(out):
        # The whole check in one expression for the common case (a million rows a run);
        # `_text` then says which field is wrong.
        if not (type(did) is str and type(channel) is str and type(recipient) is str and
                0 < len(did) <= MAX_ID and 0 < len(channel) <= MAX_ID and
                0 < len(recipient) <= MAX_ADDRESS and "\x00" not in did and
                "\x00" not in channel and "\x00" not in recipient):
            _text("delivery_id", did, MAX_ID, index)
            _text("channel", channel, MAX_ID, index)
            _text("recipient", recipient, MAX_ADDRESS, index)
    return out


def _updates(updates: Sequence[DeliveryUpdate]) -> list[DeliveryUpdate]:
    if len(updates) > v.MAX_BATCH:
        raise TooManyEntries(f"A batch holds at most {v.MAX_BATCH} outcomes.")
    checked: list[DeliveryUpdate] = []
    for index, u in enumerate(updates):
        _text("delivery_id", u.delivery_id, MAX_ID, index)
        _status(u.status, index)
        # A provider's answer is kept as text, less NUL characters (no storage keeps them).
        error = None if u.error is None else str(u.error).replace("\x00", "")[:MAX_ERROR]
        pid = None if u.provider_id is None else str(u.provider_id).replace("\x00", "")[:MAX_ID]
        checked.append(DeliveryUpdate(u.delivery_id, u.status, error, pid))
    # An id given twice: its last outcome counts, on both storages (one statement per
    # batch there, which would apply an arbitrary one of the repeats).
    last = {u.delivery_id: u for u in checked}
    return checked if len(last) == len(checked) else list(last.values())


def _text(field: str, value: Any, most: int, index: int | None = None) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= most:
        raise InvalidInput(f"{field} must be a string of 1 to {most} characters, not "
                           f"{value!r:.60}.", field=field, index=index)
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain a NUL character.", field=field,
                           index=index)


def _status(status: Any, index: int | None = None) -> None:
    if status not in DELIVERY_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(DELIVERY_STATUSES)}, not "
                           f"{status!r:.50}.", field="status", index=index)


def _keep(keep_seconds: Any) -> int:
    if isinstance(keep_seconds, bool) or not isinstance(keep_seconds, int) or \
            not 1 <= keep_seconds <= MAX_KEEP_SECONDS:
        raise InvalidInput(f"keep_seconds must be between 1 and {MAX_KEEP_SECONDS:,}.",
                           field="keep_seconds")
    return keep_seconds
