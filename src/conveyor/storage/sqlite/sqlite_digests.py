"""SQLite half of the digest tables: a mixin of `SqliteStorage`. Each write is one
`BEGIN IMMEDIATE` transaction, so an event and a releaser's claim never interleave."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence

from conveyor.digests import Digest, DigestEvent
from conveyor.storage.digest_rows import digest_from_row, event_from_row
from conveyor.storage.params import DigestAddParams, HoldRow
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase

Q = load_queries("conveyor.storage.sqlite", "digests.sql")


class SqliteDigests(SqliteBase):
    """Digests and quiet-hour holds in SQLite."""

    async def digest_add(self, params: DigestAddParams) -> tuple[Digest | None, bool]:
        """Add an event to the recipient's open digest for the key (opening one when none
        is open); returns the digest and whether the event is new (False: asked before,
        with the digest that has it, None once that was released)."""
        p = params
        at = self._now(p.now)
        keys = {"recipient_id": p.recipient_id, "key": p.key, "now": at}

        def run(db: sqlite3.Connection) -> tuple[Digest | None, bool]:
            with self._write(db):
                found = db.execute(Q["digest_event_find"], {"event_id": p.event_id}).fetchone()
                if found is not None:
                    return digest_from_row(found), False
                db.execute(Q["digest_close_due"], keys)
                db.execute(Q["digest_open"], {**keys, "id": p.digest_id,
                                              "category": p.category, "template": p.template,
                                              "window_ms": p.window_ms})
                (digest_id,) = db.execute(Q["digest_lock_open"], keys).fetchone()
                db.execute(Q["digest_event_add"], {
                    "event_id": p.event_id, "digest_id": digest_id, "now": at,
                    "data": p.data, "targets": p.targets})
                row = db.execute(Q["digest_count"], {"id": digest_id, "added": 1}).fetchone()
                return digest_from_row(row), True
        return await self._run(run)

    async def digest_claim(self, now: int | None, lease_ms: int, limit: int) -> list[Digest]:
        """Lease up to `limit` due digests (or ones whose releaser's lease lapsed)."""
        params = {"now": self._now(now), "lease_ms": lease_ms, "limit": limit}

        def run(db: sqlite3.Connection) -> list[Digest]:
            if db.execute(Q["digest_due"], params).fetchone() is None:
                return []  # nothing due: no write lock taken (releasers poll this)
            with self._write(db):
                return [digest_from_row(r) for r in db.execute(Q["digest_claim"], params)]
        return await self._run(run)

    async def digest_events(self, digest_id: str) -> list[DigestEvent]:
        """A digest's events, oldest first."""
        return await self._run(lambda db: [event_from_row(r) for r in db.execute(
            Q["digest_events"], {"digest_id": digest_id})])

    async def digest_finish(self, digest_id: str, lease_until: int) -> bool:
        """Delete a released digest and its events, if this lease still holds it."""
        params = {"digest_id": digest_id, "lease_until": lease_until}

        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                if db.execute(Q["digest_finish"], params).rowcount == 0:
                    return False
                db.execute(Q["digest_finish_events"], params)
                return True
        return await self._run(run)

    async def digest_list(self, recipient_id: str) -> list[Digest]:
        """A recipient's digests not yet released, oldest first."""
        return await self._run(lambda db: [digest_from_row(r) for r in db.execute(
            Q["digest_list"], {"recipient_id": recipient_id})])

    async def hold_add_many(self, rows: Sequence[HoldRow]) -> None:
        """Remember held queue messages (a repeated one takes the new release time)."""
        values = [{"recipient_id": r.recipient_id, "message_id": uuid.UUID(r.message_id).bytes,
                   "queue_id": r.queue_id, "release_at": r.release_at} for r in rows]

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.executemany(Q["hold_add_many"], values)
        await self._run(run)

    async def hold_retime(self, recipient_id: str, release_at: int, now: int | None) -> int:
        """Move the recipient's held messages not yet released to `release_at`; returns
        how many messages moved."""
        params = {"recipient_id": recipient_id, "release_at": release_at,
                  "now": self._now(now)}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                moved = db.execute(Q["hold_retime_messages"], params).rowcount
                db.execute(Q["hold_retime"], params)
                return int(moved)
        return await self._run(run)

    async def hold_expire(self, now: int | None, limit: int) -> int:
        """Forget holds whose release time passed."""
        params = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return int(db.execute(Q["hold_expire"], params).rowcount)
        return await self._run(run)
