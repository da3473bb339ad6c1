"""Recipients as a broker operation (`broker.recipients`): the people notifications are
addressed to, with their time zone, locale, addresses, preferences and quiet hours.

Input is checked here, once, by `conveyor.recipients.parse_recipient`; storage runs thin
SQL. A batch (an import chunk) is one transaction: it is stored whole or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput, TooManyEntries
from conveyor.ledger import Delivery
from conveyor.recipients import Recipient, check_id, parse_line, parse_recipient

if TYPE_CHECKING:
    from conveyor.broker.broker import Broker

__all__ = ["MAX_PUT_BATCH", "Recipients"]

_SWEEP_BATCH = 10_000
MAX_PUT_BATCH = 5000
"""Recipients per `put_many` call (one transaction): an import sends chunks of this size."""


class Recipients:
    """Create, replace, read and delete recipients (`broker.recipients`)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def put(self, recipient_id: str, doc: Mapping[str, Any]) -> Recipient:
        """Create or replace one recipient from its JSON form; returns it as stored."""
        recipient = parse_recipient(recipient_id, doc)
        before = await self._broker.storage.recipient_get(recipient.id)
        await self._broker.storage.recipient_put_many([recipient], self._broker.now())
        stored = await self._broker.storage.recipient_get(recipient.id)
        if before is not None and (before.quiet_hours, before.timezone) != (
                recipient.quiet_hours, recipient.timezone):
            # Messages held for the old quiet hours go when the new ones allow.
            await self._broker.digests.retime(recipient)
        return stored or recipient  # None only if deleted meanwhile: what was written

    async def put_many(self, recipients: Sequence[Recipient]) -> int:
        """Create or replace up to `MAX_PUT_BATCH` parsed recipients in one transaction;
        returns how many."""
        if len(recipients) > MAX_PUT_BATCH:
            raise TooManyEntries(f"A batch holds at most {MAX_PUT_BATCH} recipients, "
                                 f"not {len(recipients)}.")
        for index, r in enumerate(recipients):
            if not isinstance(r, Recipient):
                raise InvalidInput("put_many takes parsed recipients "
                                   "(conveyor.recipients.parse_recipient).", index=index)
        if len({r.id for r in recipients}) != len(recipients):
            raise InvalidInput("A batch must not repeat a recipient id.", field="id")
        if recipients:
            await self._broker.storage.recipient_put_many(list(recipients),
                                                          self._broker.now())
        return len(recipients)

    async def import_lines(self, lines: Iterable[str | Mapping[str, str]], *,
                           batch: int = MAX_PUT_BATCH, first_line: int = 1,
                           progress: Callable[[int, float], None] | None = None) -> int:
        """Import recipients from JSON lines or CSV rows (`conveyor.recipients.parse_line`),
        `batch` per transaction; returns how many. A bad line stops the import with its
        line number (counted from `first_line`: 2 for CSV under its header); the batches
        before it are stored (an import is an upsert, so running
        it again after fixing the line is safe). `progress(count, seconds)` after each
        batch."""
        if not 1 <= batch <= MAX_PUT_BATCH:
            raise InvalidInput(f"batch must be between 1 and {MAX_PUT_BATCH}.", field="batch")
        started = time.perf_counter()
        done = 0
        chunk: dict[str, Recipient] = {}
        for number, line in enumerate(lines, first_line):
            if isinstance(line, str) and not line.strip():
                continue
            try:
                r = parse_line(line)
            except InvalidInput as exc:
                raise InvalidInput(f"Line {number}: {exc.message}", field=exc.field,
                                   index=number) from None
            chunk[r.id] = r  # a repeated id in one batch: the later line wins, as it would
            if len(chunk) >= batch:
                done += await self.put_many(list(chunk.values()))
                chunk.clear()
                if progress is not None:
                    progress(done, time.perf_counter() - started)
        if chunk:
            done += await self.put_many(list(chunk.values()))
            if progress is not None:
                progress(done, time.perf_counter() - started)
        return done

    async def get(self, recipient_id: str) -> Recipient | None:
        """One recipient, or None."""
        parse_recipient(recipient_id, {})  # checks the id
        return await self._broker.storage.recipient_get(recipient_id)

    async def delete(self, recipient_id: str) -> bool:
        """Delete a recipient; True when it existed."""
        parse_recipient(recipient_id, {})
        return await self._broker.storage.recipient_delete(recipient_id)

    async def count(self) -> int:
        """How many recipients are stored."""
        return await self._broker.storage.recipient_count()

    async def page(self, after: str | None = None, limit: int = 1000) -> list[Recipient]:
        """Up to `limit` (at most `MAX_PUT_BATCH`) recipients in id order after the id
        `after` (None: from the first); the last one's id gives the next page."""
        if after is not None:
            parse_recipient(after, {})
        if isinstance(limit, bool) or not isinstance(limit, int) or \
                not 1 <= limit <= MAX_PUT_BATCH:
            raise InvalidInput(f"limit must be between 1 and {MAX_PUT_BATCH}.",
                               field="limit")
        return await self._broker.storage.recipient_page(after, limit)

    # their notifications ------------------------------------------------------------
    async def link(self, recipient_id: str, delivery_ids: Sequence[str], *,
                   keep_seconds: int = 7 * 86_400) -> None:
        """Remember that these notifications (up to 1,000) were made for the recipient, for
        `notifications`; kept as long as the ledger keeps them (`keep_seconds`)."""
        parse_recipient(recipient_id, {})
        await self.link_many([(recipient_id, d) for d in delivery_ids],
                             keep_seconds=keep_seconds)

    async def link_many(self, pairs: Sequence[tuple[str, str]], *,
                        keep_seconds: int = 7 * 86_400) -> None:
        """`link` for many recipients at once: up to 1,000 (recipient id, delivery id)
        pairs in one write (a bulk notify links a page of people together)."""
        if len(pairs) > 1000:
            raise TooManyEntries("A batch holds at most 1000 links.")
        checked: set[str] = set()
        for index, (rid, d) in enumerate(pairs):
            if rid not in checked:
                check_id(rid)
                checked.add(rid)
            if not isinstance(d, str) or not 1 <= len(d) <= 200:
                raise InvalidInput("A delivery id is 1 to 200 characters.",
                                   field="delivery_id", index=index)
        if not 1 <= keep_seconds <= 365 * 86_400:
            raise InvalidInput("keep_seconds must be between 1 and 31,536,000.",
                               field="keep_seconds")
        unique = list(dict.fromkeys(pairs))
        if unique:
            await self._broker.storage.recipient_delivery_add_many(
                unique, keep_seconds * 1000, self._broker.now())

    async def notifications(self, recipient_id: str, limit: int = 100) -> list[Delivery]:
        """The recipient's notifications with their current state, newest first."""
        parse_recipient(recipient_id, {})
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000.", field="limit")
        return await self._broker.storage.recipient_delivery_list(
            recipient_id, limit, self._broker.now())

    async def expire(self, now: int | None = None) -> int:
        """Delete links past their keep time; called by `Broker.sweep`."""
        at = self._broker.now() if now is None else now
        removed = 0
        while (n := await self._broker.storage.recipient_delivery_expire(at, _SWEEP_BATCH)):
            removed += n
            if n < _SWEEP_BATCH:
                break
        return removed
