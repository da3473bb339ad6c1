"""`client.limits` and `client.jobs`: the broker's rate-limit, slot, cron and job-status
operations over HTTP, in an async and a sync flavour built on the same calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from conveyor.client._calls import Call
from conveyor.client._models import (
    Grant,
    JobStatus,
    job_detail_of,
    job_status_json,
    job_status_of,
)
from conveyor.jobs import CronLease, JobDetail, JobFilter, JobPage, Skipped

T = TypeVar("T")
AsyncRun = Callable[[Call[T]], Awaitable[T]]
SyncRun = Callable[[Call[T]], T]


def _grant(_: int, d: Any) -> Grant:
    return Grant(int(d["granted"]), float(d["retry_after"]))


def _count(key: str) -> Callable[[int, Any], int]:
    return lambda _, d: int(d[key])


def take(key: str, rate: int, per: float, want: int, burst: int | None) -> Call[Grant]:
    """POST /v1/limits/take."""
    return Call("POST", "/v1/limits/take", _grant,
                {"key": key, "rate": rate, "per": per, "want": want, "burst": burst})


def penalize(key: str, seconds: float) -> Call[None]:
    """POST /v1/limits/penalize."""
    return Call("POST", "/v1/limits/penalize", lambda _, d: None,
                {"key": key, "seconds": seconds})


def acquire(key: str, limit: int, holder: str, want: int, lease_seconds: int) -> Call[int]:
    """POST /v1/limits/acquire."""
    return Call("POST", "/v1/limits/acquire", _count("acquired"),
                {"key": key, "limit": limit, "holder": holder, "want": want,
                 "lease_seconds": lease_seconds})


def renew(key: str, holder: str, lease_seconds: int) -> Call[int]:
    """POST /v1/limits/renew."""
    return Call("POST", "/v1/limits/renew", _count("held"),
                {"key": key, "holder": holder, "lease_seconds": lease_seconds})


def release(key: str, holder: str, count: int) -> Call[None]:
    """POST /v1/limits/release."""
    return Call("POST", "/v1/limits/release", lambda _, d: None,
                {"key": key, "holder": holder, "count": count})


def cron_claim(schedule: str, tick_at: int) -> Call[bool]:
    """POST /v1/cron/claim."""
    return Call("POST", "/v1/cron/claim", lambda _, d: bool(d["claimed"]),
                {"schedule": schedule, "tick_at": tick_at})


def cron_lease(schedule: str, tick_at: int, lease_seconds: float) -> Call[CronLease]:
    """POST /v1/cron/claim with `lease_seconds` (a lease claim)."""
    return Call("POST", "/v1/cron/claim", lambda _, d: CronLease(
        bool(d["claimed"]), bool(d.get("pending", False)),
        tuple(int(t) for t in d.get("lapsed", ()))),
        {"schedule": schedule, "tick_at": tick_at, "lease_seconds": lease_seconds})


def cron_sent(schedule: str, tick_at: int) -> Call[None]:
    """POST /v1/cron/claim with `sent` (a leased tick's job is sent)."""
    return Call("POST", "/v1/cron/claim", lambda _, d: None,
                {"schedule": schedule, "tick_at": tick_at, "sent": True})


def claim_release(key: str, job_id: str) -> Call[bool]:
    """POST /v1/jobs/claims/release."""
    return Call("POST", "/v1/jobs/claims/release", lambda _, d: bool(d["released"]),
                {"key": key, "job_id": job_id})


def status_set_many(statuses: Sequence[JobStatus]) -> Call[None]:
    """POST /v1/jobs/status."""
    return Call("POST", "/v1/jobs/status", lambda _, d: None,
                {"jobs": [job_status_json(s) for s in statuses]})


def status_get(job_id: str) -> Call[JobStatus | None]:
    """GET /v1/jobs/{id} (None when unknown)."""
    return Call("GET", f"/v1/jobs/{quote(job_id, safe='')}",
                lambda _, d: None if d is None else job_status_of(d),
                missing_is_none=True)


def job_detail(job_id: str) -> Call[JobDetail]:
    """GET /v1/jobs/{id}: the status with arguments, attempts and timeline."""
    return Call("GET", f"/v1/jobs/{quote(job_id, safe='')}", lambda _, d: job_detail_of(d))


def status_counts(queue: str | None) -> Call[dict[str, int]]:
    """GET /v1/jobs/counts?queue=: how many jobs are in each status."""
    return Call("GET", "/v1/jobs/counts",
                lambda _, d: {str(k): int(v) for k, v in d["counts"].items()},
                params={"queue": queue} if queue else None)


def _filter(where: JobFilter | None) -> dict[str, Any]:
    w = where or JobFilter()
    found = {"state": w.state, "task": w.task, "queue": w.queue,
             "updated_since": w.updated_since, "updated_until": w.updated_until,
             "key": w.key, "created_since": w.created_since,
             "created_until": w.created_until}
    return {k: v for k, v in found.items() if v is not None}


def _bulk_body(where: JobFilter | None, limit: int, after: str | None, all_jobs: bool
               ) -> dict[str, Any]:
    """A bulk action's body: `all` only when set (an empty filter needs it)."""
    body = {**_filter(where), "limit": limit, "after": after}
    return {**body, "all": True} if all_jobs else body


def _page(_: int, d: Any) -> JobPage:
    return JobPage([job_status_of(j) for j in d["jobs"]], d.get("next"))


def _retried(_: int, d: Any) -> tuple[list[JobStatus], list[Skipped], str | None]:
    return ([job_status_of(j) for j in d["retried"]],
            [Skipped(s["job_id"], s["code"], s["message"]) for s in d["skipped"]], d["next"])


def job_list(where: JobFilter | None, limit: int, after: str | None) -> Call[JobPage]:
    """GET /v1/jobs with the filters."""
    params = {k: str(v) for k, v in _filter(where).items()}
    params["limit"] = str(limit)
    if after is not None:
        params["after"] = after
    return Call("GET", "/v1/jobs", _page, params=params)


def job_retry(job_id: str) -> Call[JobStatus]:
    """POST /v1/jobs/{id}/retry."""
    return Call("POST", f"/v1/jobs/{quote(job_id, safe='')}/retry",
                lambda _, d: job_status_of(d))


def job_retry_many(where: JobFilter | None, limit: int, after: str | None,
                   all_jobs: bool = False
                   ) -> Call[tuple[list[JobStatus], list[Skipped], str | None]]:
    """POST /v1/jobs/retry."""
    return Call("POST", "/v1/jobs/retry", _retried,
                _bulk_body(where, limit, after, all_jobs))


def job_delete(job_id: str) -> Call[None]:
    """DELETE /v1/jobs/{id}."""
    return Call("DELETE", f"/v1/jobs/{quote(job_id, safe='')}", lambda _, d: None,
                empty=True)


def job_delete_many(where: JobFilter | None, limit: int, after: str | None,
                    all_jobs: bool = False
                    ) -> Call[tuple[int, str | None]]:
    """POST /v1/jobs/delete."""
    return Call("POST", "/v1/jobs/delete", lambda _, d: (int(d["deleted"]), d["next"]),
                _bulk_body(where, limit, after, all_jobs))


def job_cancel(job_id: str) -> Call[JobStatus]:
    """POST /v1/jobs/{id}/cancel (200: cancelled; 202: its worker was asked to stop it)."""
    return Call("POST", f"/v1/jobs/{quote(job_id, safe='')}/cancel",
                lambda _, d: job_status_of(d))


def _cancelled(_: int, d: Any) -> tuple[list[JobStatus], list[Skipped], str | None]:
    return ([job_status_of(j) for j in d["cancelled"]],
            [Skipped(s["job_id"], s["code"], s["message"]) for s in d["skipped"]], d["next"])


def job_cancel_many(where: JobFilter | None, limit: int, after: str | None,
                    all_jobs: bool = False
                    ) -> Call[tuple[list[JobStatus], list[Skipped], str | None]]:
    """POST /v1/jobs/cancel."""
    return Call("POST", "/v1/jobs/cancel", _cancelled,
                _bulk_body(where, limit, after, all_jobs))


def cancel_requests(job_ids: Sequence[str]) -> Call[list[str]]:
    """POST /v1/jobs/cancel-requests: which of these jobs are to be cancelled."""
    return Call("POST", "/v1/jobs/cancel-requests",
                lambda _, d: [str(i) for i in d["job_ids"]], {"job_ids": list(job_ids)})


def _status(job_id: str, status: str, queue: str, task: str | None, attempts: int,
            error: str | None, result: Any, keep_seconds: int) -> JobStatus:
    return JobStatus(job_id, status, queue, task, attempts, error, result, keep_seconds)


class AsyncLimits:
    """Rate-limit tokens (GCRA) and global concurrency slots, through a server."""

    def __init__(self, run: Callable[[Call[Any]], Awaitable[Any]]) -> None:
        self._run = run

    async def take(self, key: str, rate: int, per: float, want: int = 1,
                   burst: int | None = None) -> Grant:
        """Take up to `want` tokens of `rate` per `per` seconds."""
        grant: Grant = await self._run(take(key, rate, per, want, burst))
        return grant

    async def penalize(self, key: str, seconds: float) -> None:
        """Hold the key back for `seconds` (after a provider's 429 Retry-After)."""
        await self._run(penalize(key, seconds))

    async def acquire(self, key: str, limit: int, holder: str, want: int = 1,
                      lease_seconds: int = 60) -> int:
        """Take up to `want` of `limit` slots for `holder`; how many were granted."""
        got: int = await self._run(acquire(key, limit, holder, want, lease_seconds))
        return got

    async def renew(self, key: str, holder: str, lease_seconds: int = 60) -> int:
        """Extend the holder's slots; how many it still holds."""
        held: int = await self._run(renew(key, holder, lease_seconds))
        return held

    async def release(self, key: str, holder: str, count: int = 1) -> None:
        """Give back `count` slots."""
        await self._run(release(key, holder, count))


class AsyncJobs:
    """Cron ticks and job status, through a server."""

    def __init__(self, run: Callable[[Call[Any]], Awaitable[Any]]) -> None:
        self._run = run

    async def cron_claim(self, schedule: str, tick_at: int) -> bool:
        """True for exactly one caller per (schedule, tick)."""
        claimed: bool = await self._run(cron_claim(schedule, tick_at))
        return claimed

    async def cron_lease(self, schedule: str, tick_at: int,
                         lease_seconds: float = 10.0) -> CronLease:
        """Claim a cron tick as a lease (see `broker.jobs.cron_lease`)."""
        lease: CronLease = await self._run(cron_lease(schedule, tick_at, lease_seconds))
        return lease

    async def cron_sent(self, schedule: str, tick_at: int) -> None:
        """A leased tick's job is sent: its claim is final."""
        await self._run(cron_sent(schedule, tick_at))

    async def claim_release(self, key: str, job_id: str) -> bool:
        """Let go of a unique job's key if that job holds it."""
        released: bool = await self._run(claim_release(key, job_id))
        return released

    async def status_set(self, job_id: str, status: str, *, queue: str,
                         task: str | None = None, attempts: int = 0, error: str | None = None,
                         result: Any = None, keep_seconds: int = 86400) -> None:
        """Record a job's status."""
        await self._run(status_set_many([_status(job_id, status, queue, task, attempts,
                                                 error, result, keep_seconds)]))

    async def status_set_many(self, statuses: Sequence[JobStatus]) -> None:
        """Record many jobs' statuses in one request."""
        await self._run(status_set_many(statuses))

    async def status_get(self, job_id: str) -> JobStatus | None:
        """A job's status, or None."""
        found: JobStatus | None = await self._run(status_get(job_id))
        return found

    async def status_counts(self, queue: str | None = None) -> Mapping[str, int]:
        """How many jobs are in each status."""
        counts: dict[str, int] = await self._run(status_counts(queue))
        return counts

    async def detail(self, job_id: str) -> JobDetail:
        """A job's page: status, arguments, attempts, timeline (404: JobNotFound)."""
        found: JobDetail = await self._run(job_detail(job_id))
        return found

    async def retry(self, job_id: str) -> JobStatus:
        """Send a dead or failed job again under its id."""
        found: JobStatus = await self._run(job_retry(job_id))
        return found

    async def retry_many(self, where: JobFilter | None = None, *, limit: int = 100,
                         after: str | None = None, all_jobs: bool = False
                         ) -> tuple[list[JobStatus], list[Skipped], str | None]:
        """Retry up to `limit` dead or failed jobs matching `where`."""
        done: tuple[list[JobStatus], list[Skipped], str | None] = await self._run(
            job_retry_many(where, limit, after, all_jobs))
        return done

    async def cancel(self, job_id: str) -> JobStatus:
        """Cancel a queued, running or retrying job (see `broker.jobs.cancel`)."""
        found: JobStatus = await self._run(job_cancel(job_id))
        return found

    async def cancel_many(self, where: JobFilter | None = None, *, limit: int = 100,
                          after: str | None = None, all_jobs: bool = False
                          ) -> tuple[list[JobStatus], list[Skipped], str | None]:
        """Cancel up to `limit` queued, running or retrying jobs matching `where`."""
        done: tuple[list[JobStatus], list[Skipped], str | None] = await self._run(
            job_cancel_many(where, limit, after, all_jobs))
        return done

    async def cancel_requests(self, job_ids: Sequence[str]) -> list[str]:
        """Which of these jobs are to be cancelled (a worker's check)."""
        found: list[str] = await self._run(cancel_requests(job_ids))
        return found

    async def delete(self, job_id: str) -> None:
        """Forget an ended job and its dead-letter message."""
        await self._run(job_delete(job_id))

    async def delete_many(self, where: JobFilter | None = None, *, limit: int = 100,
                          after: str | None = None, all_jobs: bool = False
                          ) -> tuple[int, str | None]:
        """Forget up to `limit` ended jobs matching `where`."""
        done: tuple[int, str | None] = await self._run(
            job_delete_many(where, limit, after, all_jobs))
        return done

    async def list(self, where: JobFilter | None = None, *, limit: int = 100,
                   after: str | None = None) -> JobPage:
        """A page of tracked jobs, newest update first (as `broker.jobs.list`); defined
        last, since below it `list` in this class body names this method."""
        page: JobPage = await self._run(job_list(where, limit, after))
        return page


class SyncLimits:
    """`AsyncLimits`, blocking."""

    def __init__(self, run: Callable[[Call[Any]], Any]) -> None:
        self._run = run

    def take(self, key: str, rate: int, per: float, want: int = 1,
             burst: int | None = None) -> Grant:
        """Take up to `want` tokens of `rate` per `per` seconds."""
        grant: Grant = self._run(take(key, rate, per, want, burst))
        return grant

    def penalize(self, key: str, seconds: float) -> None:
        """Hold the key back for `seconds`."""
        self._run(penalize(key, seconds))

    def acquire(self, key: str, limit: int, holder: str, want: int = 1,
                lease_seconds: int = 60) -> int:
        """Take up to `want` of `limit` slots for `holder`."""
        got: int = self._run(acquire(key, limit, holder, want, lease_seconds))
        return got

    def renew(self, key: str, holder: str, lease_seconds: int = 60) -> int:
        """Extend the holder's slots."""
        held: int = self._run(renew(key, holder, lease_seconds))
        return held

    def release(self, key: str, holder: str, count: int = 1) -> None:
        """Give back `count` slots."""
        self._run(release(key, holder, count))


class SyncJobs:
    """`AsyncJobs`, blocking."""

    def __init__(self, run: Callable[[Call[Any]], Any]) -> None:
        self._run = run

    def cron_claim(self, schedule: str, tick_at: int) -> bool:
        """True for exactly one caller per (schedule, tick)."""
        claimed: bool = self._run(cron_claim(schedule, tick_at))
        return claimed

    def claim_release(self, key: str, job_id: str) -> bool:
        """Let go of a unique job's key if that job holds it."""
        released: bool = self._run(claim_release(key, job_id))
        return released

    def status_set(self, job_id: str, status: str, *, queue: str, task: str | None = None,
                   attempts: int = 0, error: str | None = None, result: Any = None,
                   keep_seconds: int = 86400) -> None:
        """Record a job's status."""
        self._run(status_set_many([_status(job_id, status, queue, task, attempts, error,
                                           result, keep_seconds)]))

    def status_set_many(self, statuses: Sequence[JobStatus]) -> None:
        """Record many jobs' statuses in one request."""
        self._run(status_set_many(statuses))

    def status_get(self, job_id: str) -> JobStatus | None:
        """A job's status, or None."""
        found: JobStatus | None = self._run(status_get(job_id))
        return found

    def status_counts(self, queue: str | None = None) -> Mapping[str, int]:
        """How many jobs are in each status."""
        counts: dict[str, int] = self._run(status_counts(queue))
        return counts

    def detail(self, job_id: str) -> JobDetail:
        """A job's page: status, arguments, attempts, timeline (404: JobNotFound)."""
        found: JobDetail = self._run(job_detail(job_id))
        return found

    def retry(self, job_id: str) -> JobStatus:
        """Send a dead or failed job again under its id."""
        found: JobStatus = self._run(job_retry(job_id))
        return found

    def retry_many(self, where: JobFilter | None = None, *, limit: int = 100,
                         after: str | None = None, all_jobs: bool = False
                         ) -> tuple[list[JobStatus], list[Skipped], str | None]:
        """Retry up to `limit` dead or failed jobs matching `where`."""
        done: tuple[list[JobStatus], list[Skipped], str | None] = self._run(
            job_retry_many(where, limit, after, all_jobs))
        return done

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a queued, running or retrying job (see `broker.jobs.cancel`)."""
        found: JobStatus = self._run(job_cancel(job_id))
        return found

    def cancel_many(self, where: JobFilter | None = None, *, limit: int = 100,
                    after: str | None = None, all_jobs: bool = False
                    ) -> tuple[list[JobStatus], list[Skipped], str | None]:
        """Cancel up to `limit` queued, running or retrying jobs matching `where`."""
        done: tuple[list[JobStatus], list[Skipped], str | None] = self._run(
            job_cancel_many(where, limit, after, all_jobs))
        return done

    def delete(self, job_id: str) -> None:
        """Forget an ended job and its dead-letter message."""
        self._run(job_delete(job_id))

    def delete_many(self, where: JobFilter | None = None, *, limit: int = 100,
                    after: str | None = None, all_jobs: bool = False
                    ) -> tuple[int, str | None]:
        """Forget up to `limit` ended jobs matching `where`."""
        done: tuple[int, str | None] = self._run(
            job_delete_many(where, limit, after, all_jobs))
        return done

    def list(self, where: JobFilter | None = None, *, limit: int = 100,
                   after: str | None = None) -> JobPage:
        """A page of tracked jobs, newest update first (as `broker.jobs.list`); defined
        last, since below it `list` in this class body names this method."""
        page: JobPage = self._run(job_list(where, limit, after))
        return page
