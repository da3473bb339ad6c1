"""PostgreSQL half of the job system's storage: rate limits, slots, cron ticks, job statuses.

A mixin of `PostgresStorage`. Every operation is one statement on a pooled connection
(the slot operations call small functions that take a transaction-scoped advisory lock),
so nothing depends on session state and it all works behind a transaction pooler.
"""

from __future__ import annotations

from collections.abc import Sequence

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
from conveyor.storage.postgres.postgres_base import PostgresBase, translated
from conveyor.storage.rows import job_attempt_from_row, job_status_from_row, tally_by_task
from conveyor.storage.sql import load_queries

Q = load_queries("conveyor.storage.postgres", "jobs.sql")
LIST_PLAN = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"


class PostgresJobs(PostgresBase):
    """Rate-limit buckets, concurrency slots, cron ticks and job statuses in PostgreSQL."""

    # rate limits --------------------------------------------------------------------
    async def rate_take(self, params: RateTakeParams) -> RateState:
        """GCRA as one upsert (see jobs.sql)."""
        row = await self._fetchrow(Q["rate_take"], params.key, params.interval_ms,
                                   params.burst, params.want, params.now)
        assert row is not None
        return RateState(int(row[0]), float(row[1]), int(row[2]), int(row[3]))

    async def rate_penalize(self, key: str, ms: int, now: int | None) -> None:
        """No tokens for `ms`."""
        await self._execute(Q["rate_penalize"], key, ms, now)

    async def rate_expire(self, now: int | None, limit: int) -> int:
        """Delete full, unpenalized buckets."""
        return await self._execute(Q["rate_expire"], now, limit)

    # concurrency slots --------------------------------------------------------------
    async def slot_acquire(self, params: SlotAcquireParams) -> int:
        """Grant what fits under the limit, under the key's advisory lock."""
        row = await self._fetchrow(Q["slot_acquire"], params.key, params.holder, params.limit,
                                   params.want, params.lease_ms, params.now)
        return int(row[0]) if row else 0

    async def slot_renew(self, params: SlotRenewParams) -> int:
        """Extend live slots; 0 when they have lapsed."""
        row = await self._fetchrow(Q["slot_renew"], params.key, params.holder,
                                   params.lease_ms, params.now)
        return int(row[0]) if row else 0

    async def slot_release(self, key: str, holder: str, count: int) -> None:
        """Give slots back."""
        await self._execute(Q["slot_release"], key, holder, count)

    async def slot_expire(self, now: int | None, limit: int) -> int:
        """Delete lapsed or empty slot rows."""
        return await self._execute(Q["slot_expire"], now, limit)

    # cron ---------------------------------------------------------------------------
    async def cron_claim(self, schedule: str, tick_at: int, now: int | None) -> bool:
        """Insert the tick's row; True when this call inserted it."""
        return bool(await self._fetch(Q["cron_claim"], schedule, tick_at, now))

    async def cron_lease(self, schedule: str, tick_at: int, lease_ms: int, window_ms: int,
                         now: int | None) -> CronLease:
        """Claim a tick as a lease (see jobs.sql); one statement."""
        row = await self._fetchrow(Q["cron_lease"], schedule, tick_at, now, lease_ms,
                                   window_ms)
        assert row is not None
        return CronLease(bool(row[0]), bool(row[1]) and not row[0],
                         tuple(int(t) for t in row[2]))

    async def cron_sent(self, schedule: str, tick_at: int) -> None:
        """The tick's job is sent: its claim is final."""
        await self._execute(Q["cron_sent"], schedule, tick_at)

    async def cron_expire(self, keep_ms: int, now: int | None, limit: int) -> int:
        """Forget old ticks."""
        return await self._execute(Q["cron_expire"], now, keep_ms, limit)

    # job statuses -------------------------------------------------------------------
    async def job_put_many(self, rows: Sequence[JobRow], now: int | None,
                           attempts: Sequence[AttemptRow] = ()) -> None:
        """Upsert a batch as arrays, one statement (a second for its attempts, in the same
        transaction)."""
        starts = {(a.job_id, a.attempt): a.started_at for a in attempts}  # a row's run
        args = ([r.job_id for r in rows], [r.queue for r in rows], [r.task for r in rows],
                [r.status for r in rows], [r.attempts for r in rows],
                [r.error for r in rows], [r.result for r in rows],
                [r.keep_seconds for r in rows], now, [r.progress for r in rows],
                [r.report for r in rows], [r.key for r in rows], [r.args for r in rows],
                [starts.get((r.job_id, r.attempts)) for r in rows])
        if not attempts:
            await self._execute(Q["job_put_many"], *args)
            return
        async with self._tx() as conn:
            await conn.execute(Q["job_put_many"], *args)
            await conn.execute(Q["job_attempt_put_many"], *(list(c) for c in zip(*attempts)))

    async def job_attempts(self, job_id: str) -> list[JobAttempt]:
        """A job's attempts, oldest first."""
        return [job_attempt_from_row(r) for r in await self._fetch(Q["job_attempts"], job_id)]

    async def job_get(self, job_id: str, now: int | None) -> JobStatus | None:
        """One unexpired status."""
        row = await self._fetchrow(Q["job_get"], job_id, now)
        return job_status_from_row(row) if row else None

    async def job_counts(self, queue: str | None, now: int | None) -> dict[str, int]:
        """Unexpired statuses by status."""
        return {str(r[0]): int(r[1]) for r in await self._fetch(Q["job_counts"], queue, now)}

    async def job_list(self, params: JobListParams) -> list[JobStatus]:
        """A page of statuses, newest update first."""
        after_at, after_id = params.after if params.after else (None, None)
        name = "job_list" if params.status is None else "job_list_state"
        args: tuple[object, ...] = (
            params.status, params.task, params.queue, params.updated_since,
            params.updated_until, after_at, after_id, params.limit, params.now,
            params.created_since, params.created_until)
        if params.key is not None:
            name, args = "job_list_key", (*args, params.key)
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                # Walk an index in order rather than gather every match and sort: with no
                # statistics (autovacuum off or not yet run) the planner bitmap-scanned all
                # 200,000 rows of one state and sorted them, 350 ms for a page of 100.
                await conn.execute(LIST_PLAN)
                rows = await conn.fetch(Q[name], *args)
        return [job_status_from_row(r) for r in rows]

    async def job_delete_many(self, job_ids: Sequence[str]) -> int:
        """Delete statuses and their attempts by id."""
        ids = list(job_ids)
        async with self._tx() as conn:
            await conn.execute(Q["job_attempt_delete_many"], ids)
            status: str = await conn.execute(Q["job_delete_many"], ids)
        return int(status.rsplit(" ", 1)[-1])

    async def job_expire(self, now: int | None, limit: int) -> int:
        """Delete expired statuses and their attempts."""
        async with self._tx() as conn:
            gone = [r[0] for r in await conn.fetch(Q["job_expire"], now, limit)]
            if gone:
                await conn.execute(Q["job_attempt_delete_many"], gone)
        return len(gone)

    async def job_counts_by_task(self, now: int | None) -> dict[tuple[str, str, str], int]:
        """Unexpired statuses by queue, task and status."""
        return tally_by_task(await self._fetch(Q["job_counts_by_task"], now))
