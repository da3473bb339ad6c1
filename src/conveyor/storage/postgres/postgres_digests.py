"""PostgreSQL half of the digest tables: a mixin of `PostgresStorage`. An event locks its
open digest row until it is in, so a releaser's claim waits for it and then sees it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from conveyor.digests import Digest, DigestEvent
from conveyor.storage.digest_rows import digest_from_row, event_from_row
from conveyor.storage.params import DigestAddParams, HoldRow
from conveyor.storage.postgres.postgres_base import PostgresBase
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "digests.sql")
_OPEN_TRIES = 5


class PostgresDigests(PostgresBase):
    """Digests and quiet-hour holds in PostgreSQL."""

    async def digest_add(self, params: DigestAddParams) -> tuple[Digest | None, bool]:
        """Add an event to the recipient's open digest for the key (opening one when none
        is open); returns the digest and whether the event is new (False: asked before,
        with the digest that has it, None once that was released)."""
        p = params
        async with self._tx() as conn:
            found = await conn.fetchrow(Q["digest_event_find"], p.event_id)
            if found is not None:
                return digest_from_row(found), False
            digest_id = None
            # A releaser may close the digest between our open and our lock (its clock
            # read later than ours): open again.
            for _ in range(_OPEN_TRIES):
                await conn.execute(Q["digest_close_due"], p.recipient_id, p.key, p.now)
                await conn.execute(Q["digest_open"], p.digest_id, p.recipient_id, p.key,
                                   p.category, p.template, p.window_ms, p.now)
                locked = await conn.fetchrow(Q["digest_lock_open"], p.recipient_id, p.key,
                                             p.now)
                if locked is not None:
                    digest_id = str(locked[0])
                    break
            if digest_id is None:
                raise RuntimeError("no open digest after repeated tries")
            added = await conn.execute(Q["digest_event_add"], p.event_id, digest_id, p.data,
                                       p.targets, p.now)
            fresh = added.endswith(" 1")
            row = await conn.fetchrow(Q["digest_count"], digest_id, int(fresh))
            return digest_from_row(row), fresh

    async def digest_claim(self, now: int | None, lease_ms: int, limit: int) -> list[Digest]:
        """Lease up to `limit` due digests (or ones whose releaser's lease lapsed)."""
        if await self._fetchrow(Q["digest_due"], now) is None:
            return []  # nothing due: no row locks, no write (releasers poll this)
        return [digest_from_row(r) for r in await self._fetch(Q["digest_claim"], now,
                                                              lease_ms, limit)]

    async def digest_events(self, digest_id: str) -> list[DigestEvent]:
        """A digest's events, oldest first."""
        return [event_from_row(r) for r in await self._fetch(Q["digest_events"], digest_id)]

    async def digest_finish(self, digest_id: str, lease_until: int) -> bool:
        """Delete a released digest and its events, if this lease still holds it."""
        async with self._tx() as conn:
            done = await conn.execute(Q["digest_finish"], digest_id, lease_until)
            if done.endswith(" 0"):
                return False
            await conn.execute(Q["digest_finish_events"], digest_id)
            return True

    async def digest_list(self, recipient_id: str) -> list[Digest]:
        """A recipient's digests not yet released, oldest first."""
        return [digest_from_row(r) for r in await self._fetch(Q["digest_list"], recipient_id)]

    async def hold_add_many(self, rows: Sequence[HoldRow]) -> None:
        """Remember held queue messages (a repeated one takes the new release time)."""
        await self._execute(Q["hold_add_many"], [r.recipient_id for r in rows],
                            [uuid.UUID(r.message_id) for r in rows],
                            [r.queue_id for r in rows], [r.release_at for r in rows])

    async def hold_retime(self, recipient_id: str, release_at: int, now: int | None) -> int:
        """Move the recipient's held messages not yet released to `release_at`; returns
        how many messages moved."""
        async with self._tx() as conn:
            moved = await conn.execute(Q["hold_retime_messages"], recipient_id, release_at,
                                       now)
            await conn.execute(Q["hold_retime"], recipient_id, release_at, now)
        return int(moved.rsplit(" ", 1)[-1])

    async def hold_expire(self, now: int | None, limit: int) -> int:
        """Forget holds whose release time passed."""
        return await self._execute(Q["hold_expire"], now, limit)
