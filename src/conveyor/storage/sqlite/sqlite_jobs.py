"""SQLite half of the job system's storage: rate limits, slots, cron ticks, job statuses.

A mixin of `SqliteStorage`. Each write is one `BEGIN IMMEDIATE` transaction in the
storage's thread; SQLite admits one writer at a time across every process sharing the
file, so a read-then-write here is atomic without further locking, and the arithmetic
is `storage.limits`, in Python.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from conveyor.jobs import CronLease, JobAttempt, JobStatus
from conveyor.storage.base import (
    AttemptRow,
    JobListParams,
    JobRow,
    RateState,
    RateTakeParams,
    SlotAcquireParams,
    SlotRenewParams,
)
from conveyor.storage.limits import gcra, slots_granted
from conveyor.storage.rows import job_attempt_from_row, job_status_from_row, tally_by_task
from conveyor.storage.sql import load_queries
from conveyor.storage.sqlite.sqlite_base import SqliteBase

Q = load_queries("conveyor.storage.sqlite", "jobs.sql")


def jobs_dead_in(db: sqlite3.Connection, job_ids: Sequence[str], error: str, receives: int,
                 at: int) -> None:
    """Inside the caller's write transaction: the live tracked jobs among these messages,
    just moved to the dead-letter queue after `receives` receives, end `dead` with their
    open attempt (plain messages: an index probe each, nothing written)."""
    args = {"ids": orjson.dumps(list(job_ids)).decode(), "error": error,
            "receives": receives, "now": at}
    db.execute(Q["job_attempt_dead_letter_many"], args)
    db.execute(Q["job_dead_letter_many"], args)


class SqliteJobs(SqliteBase):
    """Rate-limit buckets, concurrency slots, cron ticks and job statuses in SQLite."""

    # rate limits --------------------------------------------------------------------
    async def rate_take(self, params: RateTakeParams) -> RateState:
        """Read the bucket, take, write it back: one transaction."""
        at = self._now(params.now)
        key = params.key

        def run(db: sqlite3.Connection) -> RateState:
            with self._write(db):
                row = db.execute(Q["rate_get"], {"key": key}).fetchone()
                tat, blocked_until = (float(row[0]), int(row[1])) if row else (0.0, 0)
                if blocked_until > at:
                    return RateState(0, tat, blocked_until, at)
                granted, tat = gcra(tat, at, params.interval_ms, params.burst, params.want)
                db.execute(Q["rate_put"], {"key": key, "tat": tat, "granted": granted,
                                           "now": at})
            return RateState(granted, tat, blocked_until, at)
        return await self._run(run)

    async def rate_penalize(self, key: str, ms: int, now: int | None) -> None:
        """No tokens for `ms`."""
        at = self._now(now)

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.execute(Q["rate_penalize"], {"key": key, "until": at + ms, "now": at})
        await self._run(run)

    async def rate_expire(self, now: int | None, limit: int) -> int:
        """Delete full, unpenalized buckets."""
        params = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["rate_expire"], params).rowcount
        return await self._run(run)

    # concurrency slots --------------------------------------------------------------
    async def slot_acquire(self, params: SlotAcquireParams) -> int:
        """Count live slots, grant what fits under the limit, extend the lease."""
        at = self._now(params.now)
        key, holder = params.key, params.holder

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                others, mine = db.execute(Q["slot_held"], {
                    "key": key, "holder": holder, "now": at}).fetchone()
                granted = slots_granted(params.limit, int(others), int(mine), params.want)
                if mine + granted > 0:
                    db.execute(Q["slot_put"], {"key": key, "holder": holder,
                                               "count": int(mine) + granted,
                                               "expires_at": at + params.lease_ms})
            return granted
        return await self._run(run)

    async def slot_renew(self, params: SlotRenewParams) -> int:
        """Extend live slots; 0 when they have lapsed."""
        at = self._now(params.now)
        args = {"key": params.key, "holder": params.holder, "now": at,
                "expires_at": at + params.lease_ms}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                row = db.execute(Q["slot_renew"], args).fetchone()
            return int(row[0]) if row else 0
        return await self._run(run)

    async def slot_release(self, key: str, holder: str, count: int) -> None:
        """Give slots back."""
        params = {"key": key, "holder": holder, "count": count}

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.execute(Q["slot_release"], params)
        await self._run(run)

    async def slot_expire(self, now: int | None, limit: int) -> int:
        """Delete lapsed or empty slot rows."""
        params = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["slot_expire"], params).rowcount
        return await self._run(run)

    # cron ---------------------------------------------------------------------------
    async def cron_claim(self, schedule: str, tick_at: int, now: int | None) -> bool:
        """Insert the tick's row; True when this call inserted it."""
        params = {"schedule": schedule, "tick_at": tick_at, "now": self._now(now)}

        def run(db: sqlite3.Connection) -> bool:
            with self._write(db):
                return db.execute(Q["cron_claim"], params).rowcount > 0
        return await self._run(run)

    async def cron_lease(self, schedule: str, tick_at: int, lease_ms: int, window_ms: int,
                         now: int | None) -> CronLease:
        """Claim a tick as a lease (see jobs.sql); one transaction."""
        params = {"schedule": schedule, "tick_at": tick_at, "now": self._now(now),
                  "lease_ms": lease_ms, "window_ms": window_ms}

        def run(db: sqlite3.Connection) -> CronLease:
            with self._write(db):
                claimed = db.execute(Q["cron_lease"], params).rowcount > 0
                pending = False
                if not claimed:
                    row = db.execute(Q["cron_tick_pending"], params).fetchone()
                    pending = row is None or bool(row[0])
                lapsed = tuple(int(r[0]) for r in db.execute(Q["cron_lapsed"], params))
            return CronLease(claimed, pending, lapsed)
        return await self._run(run)

    async def cron_sent(self, schedule: str, tick_at: int) -> None:
        """The tick's job is sent: its claim is final."""
        params = {"schedule": schedule, "tick_at": tick_at}

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.execute(Q["cron_sent"], params)
        await self._run(run)

    async def cron_expire(self, keep_ms: int, now: int | None, limit: int) -> int:
        """Forget old ticks."""
        params = {"now": self._now(now), "keep_ms": keep_ms, "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                return db.execute(Q["cron_expire"], params).rowcount
        return await self._run(run)

    # job statuses -------------------------------------------------------------------
    async def job_put_many(self, rows: Sequence[JobRow], now: int | None,
                           attempts: Sequence[AttemptRow] = ()) -> None:
        """Upsert a batch (and its attempts) in one transaction."""
        at = self._now(now)
        starts = {(a.job_id, a.attempt): a.started_at for a in attempts}  # a row's run
        values = [(r.job_id, r.queue, r.task, r.status, r.attempts, r.error, r.result,
                   r.keep_seconds, at, at + r.keep_seconds * 1000, r.progress, r.report,
                   r.key, r.args, at, starts.get((r.job_id, r.attempts)))
                  for r in rows]

        def run(db: sqlite3.Connection) -> None:
            with self._write(db):
                db.executemany(Q["job_put_many"], values)
                if attempts:
                    db.executemany(Q["job_attempt_put_many"], attempts)
        await self._run(run)

    async def job_attempts(self, job_id: str) -> list[JobAttempt]:
        """A job's attempts, oldest first."""
        return await self._run(lambda db: [
            job_attempt_from_row(r) for r in db.execute(Q["job_attempts"], {"id": job_id})])

    async def job_get(self, job_id: str, now: int | None) -> JobStatus | None:
        """One unexpired status."""
        params = {"id": job_id, "now": self._now(now)}

        def run(db: sqlite3.Connection) -> JobStatus | None:
            row = db.execute(Q["job_get"], params).fetchone()
            return job_status_from_row(row) if row else None
        return await self._run(run)

    async def job_counts(self, queue: str | None, now: int | None) -> dict[str, int]:
        """Unexpired statuses by status."""
        params = {"queue": queue, "now": self._now(now)}
        return await self._run(lambda db: {
            str(r[0]): int(r[1]) for r in db.execute(Q["job_counts"], params)})

    async def job_list(self, params: JobListParams) -> list[JobStatus]:
        """A page of statuses, newest update first."""
        after_at, after_id = params.after if params.after else (None, None)
        args = {"status": params.status, "task": params.task, "queue": params.queue,
                "since": params.updated_since, "until": params.updated_until,
                "key": params.key, "created_since": params.created_since,
                "created_until": params.created_until,
                "after_at": after_at, "after_id": after_id, "limit": params.limit,
                "now": self._now(params.now)}
        name = "job_list" if params.status is None else "job_list_state"
        sql = Q["job_list_key" if params.key is not None else name]
        return await self._run(lambda db: [
            job_status_from_row(r) for r in db.execute(sql, args)])

    async def job_delete_many(self, job_ids: Sequence[str]) -> int:
        """Delete statuses and their attempts by id."""
        args = {"ids": orjson.dumps(list(job_ids)).decode()}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                db.execute(Q["job_attempt_delete_many"], args)
                return db.execute(Q["job_delete_many"], args).rowcount
        return await self._run(run)

    async def job_expire(self, now: int | None, limit: int) -> int:
        """Delete expired statuses and their attempts."""
        params = {"now": self._now(now), "limit": limit}

        def run(db: sqlite3.Connection) -> int:
            with self._write(db):
                gone = [r[0] for r in db.execute(Q["job_expire"], params)]
                if gone:
                    db.execute(Q["job_attempt_delete_many"],
                               {"ids": orjson.dumps(gone).decode()})
                return len(gone)
        return await self._run(run)

    async def job_counts_by_task(self, now: int | None) -> dict[tuple[str, str, str], int]:
        """Unexpired statuses by queue, task and status."""
        params = {"now": self._now(now)}
        return await self._run(lambda db: tally_by_task(
            db.execute(Q["job_counts_by_task"], params)))
