"""The dashboard's job explorer and per-message dead-letter actions.

`/ui/jobs` lists tracked jobs by filter (state, task, queue, key, enqueue and update
time; times typed as UTC), a page at a time, with bulk retry, cancel and delete for the current
filter; `/ui/jobs/{id}` shows one job: arguments, attempts with their errors and
tracebacks, result, timeline, the tree of the flow it belongs to, and retry, cancel
and delete buttons. On a dead-letter queue's page
each message can be redriven to its source or deleted. Forms POST with the session's
CSRF token, as the rest of the dashboard's (`conveyor.http.dashboard._form`), and answer
with a redirect carrying a notice or an error.

With API keys, as on the rest of the dashboard, a job's page and its buttons take `manage`
on the job's queue, the list and its bulk buttons `manage` on the filter's queue (on every
queue without one: a key of some queues is asked to pick one), and a message's redrive
`send` on the source queue its attribute names.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from conveyor.broker import dead_letters
from conveyor.broker.broker import Broker
from conveyor.digits import integer
from conveyor.errors import ConveyorError, InvalidInput
from conveyor.flows import Flow
from conveyor.http.auth import allowed, permit, scoped
from conveyor.http.dashboard import _FLOW_CHILDREN, _broker, _form, _monitor, _page
from conveyor.http.job_routes import permit_job
from conveyor.jobs import JOB_STATUSES, RETRYABLE, JobFilter

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
BULK_ROUNDS = 10  # a bulk button takes up to 10 x 1,000 jobs; press again for more
_ENDED = ("succeeded", "failed", "dead", "cancelled")
_CANCELLABLE = ("queued", "running", "retrying")
_ACTIONS = frozenset({"retry", "delete", "cancel"})  # /ui/jobs/<action>: the list's forms
_TEXT_FILTERS = ("state", "task", "queue", "key")
_TIME_FILTERS = ("created_since", "created_until", "updated_since", "updated_until")
FILTERS = _TEXT_FILTERS + _TIME_FILTERS


def _ms(field: str, text: str) -> int | None:
    """A time filter typed into the page (`2026-12-05T21:00`, UTC unless it says) or ms."""
    text = text.strip()
    if not text:
        return None
    if (ms := integer(text)) is not None:
        return ms
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} must be a time like 2026-12-05T21:00 (UTC), not "
                           f"{text[:40]!r}.", field=field) from None
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


def job_filter(given: Mapping[str, str]) -> tuple[JobFilter, dict[str, str]]:
    """The filter named by a query or form, and its fields as typed (empty ones left out)."""
    # not cut to length: an action on a shortened filter could take jobs nobody named
    typed = {k: given.get(k, "").strip() for k in FILTERS}
    typed = {k: v for k, v in typed.items() if v}
    text = {k: typed.get(k) for k in _TEXT_FILTERS}
    times = {k: _ms(k, typed.get(k, "")) for k in _TIME_FILTERS}
    return JobFilter(text["state"], text["task"], text["queue"], times["updated_since"],
                     times["updated_until"], text["key"], times["created_since"],
                     times["created_until"]), typed


@router.get("/ui/jobs")
async def jobs_page(request: Request) -> Response:
    """Tracked jobs by filter, newest update first, with bulk actions for the filter."""
    broker = _broker(request)
    query = dict(request.query_params)
    every = allowed(request, "manage", None)
    jobs: list[Any] = []
    after = query.get("after") or None
    more: str | None = None
    problem = ""
    try:
        where, typed = job_filter(query)
        if where.queue is not None:
            permit(request, "manage", where.queue)
        elif not every:
            raise InvalidInput("This key manages some queues only: filter by one of them.",
                               field="queue")
        page = await broker.jobs.list(where, limit=PAGE_SIZE, after=after)
        jobs, more = page.jobs, page.next
    except ConveyorError as exc:
        where, typed = JobFilter(), {k: query.get(k, "")[:200] for k in FILTERS}
        problem = exc.message
    counts = await broker.jobs.status_counts(None if every else where.queue) \
        if every or where.queue is not None else dict.fromkeys(JOB_STATUSES, 0)
    next_url = f"/ui/jobs?{urlencode({**typed, 'after': more})}" if more else None
    return _page(request, "jobs.html", jobs=jobs, counts=counts, typed=typed,
                 states=JOB_STATUSES, next_url=next_url, paged=after is not None,
                 problem=problem, filtered=bool(typed),
                 can_retry=where.state in (None, *RETRYABLE),
                 can_delete=where.state in (None, *_ENDED),
                 can_cancel=where.state in (None, *_CANCELLABLE), now=broker.wall_now())


@router.get("/ui/jobs/{job_id}")
async def job_page(request: Request, job_id: str) -> Response:
    """One job: arguments, attempts with errors and tracebacks, result, timeline."""
    if job_id in _ACTIONS:  # GET of a form's target: its 405, not "no job named retry"
        raise StarletteHTTPException(405)
    broker = _broker(request)
    try:
        found = await broker.jobs.detail(job_id)
    except ConveyorError:
        return _page(request, "missing.html", status=404, name=job_id, what="job")
    permit(request, "manage", found.status.queue)
    status = found.status.status
    try:  # the tree of the flow it belongs to, if any (`conveyor.flows`)
        flow: Flow | None = await broker.flows.of_job(job_id)
    except ConveyorError:
        flow = None
    if flow is not None and not allowed(request, "manage", *{n.queue for n in flow.nodes}):
        flow = None  # its other jobs are other queues' (the flow page says so)
    roots: list[int] = []
    if flow is not None:
        waited_for = {child for n in flow.nodes for child in n.after}
        roots = [n.node for n in flow.nodes if n.node not in waited_for]
    return _page(request, "job.html", job=found.status, attempts=found.attempts,
                 timeline=found.timeline, can_retry=status in RETRYABLE,
                 can_delete=status in _ENDED, can_cancel=status in _CANCELLABLE,
                 flow=flow, roots=roots, limit=_FLOW_CHILDREN)


# actions ------------------------------------------------------------------------------
Action = Callable[[Broker, dict[str, str]], Awaitable[tuple[str, str]]]


async def _act(request: Request, fallback: str, action: Action) -> Response:
    """Check the form (CSRF), run the action, go to the page it names with its notice;
    on a refusal back to `fallback` with the error."""
    fields, refused = await _form(request)
    if refused is not None:
        return refused
    try:
        path, notice = await action(_broker(request), fields)
    except ConveyorError as exc:
        return _go(fallback, error=exc.message)
    return _go(path, notice=notice)


def _go(path: str, **message: str) -> Response:
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}{urlencode(message)}", status_code=303)


def _job_url(job_id: str) -> str:
    return f"/ui/jobs/{quote(job_id, safe='')}"


def _list_url(typed: Mapping[str, str]) -> str:
    return f"/ui/jobs?{urlencode(typed)}" if typed else "/ui/jobs"


async def _in_rounds(
        step: Callable[[str | None], Awaitable[tuple[Sequence[Any], Sequence[Any], str | None]]]
) -> tuple[int, int, str | None]:
    """A bulk action in pages of 1,000, at most BULK_ROUNDS of them: how many were done,
    how many skipped, and the cursor to go on from (None: all done)."""
    done = skipped = 0
    after: str | None = None
    for _ in range(BULK_ROUNDS):
        acted, left, after = await step(after)
        done, skipped = done + len(acted), skipped + len(left)
        if after is None:
            break
    return done, skipped, after


def _everything(form: Mapping[str, str]) -> bool:
    """A bulk form's explicit all (the list with no filter sends it; the user confirmed)."""
    return form.get("all") == "true"


@router.post("/ui/jobs/retry")
async def retry_filtered(request: Request) -> Response:
    """Retry the dead and failed jobs matching the list's filter."""
    async def run(broker: Broker, f: dict[str, str]) -> tuple[str, str]:
        where, typed = job_filter(f)
        permit(request, "manage", where.queue)
        everything = _everything(f)
        retried, skipped, after = await _in_rounds(
            lambda at: broker.jobs.retry_many(where, limit=1000, after=at, all_jobs=everything))
        notice = f"Retried {retried:,} jobs."
        if skipped:
            notice += f" {skipped:,} skipped (their dead-letter message is gone)."
        if after is not None:
            notice += " More match: press Retry again."
        return _list_url(typed), notice
    return await _act(request, "/ui/jobs", run)


@router.post("/ui/jobs/delete")
async def delete_filtered(request: Request) -> Response:
    """Forget the ended jobs matching the list's filter."""
    async def run(broker: Broker, f: dict[str, str]) -> tuple[str, str]:
        where, typed = job_filter(f)
        permit(request, "manage", where.queue)
        everything = _everything(f)
        deleted = 0
        after: str | None = None
        for _ in range(BULK_ROUNDS):
            n, after = await broker.jobs.delete_many(where, limit=1000, after=after,
                                                    all_jobs=everything)
            deleted += n
            if after is None:
                break
        more = " More match: press Delete again." if after is not None else ""
        return _list_url(typed), f"Deleted {deleted:,} ended jobs.{more}"
    return await _act(request, "/ui/jobs", run)


@router.post("/ui/jobs/cancel")
async def cancel_filtered(request: Request) -> Response:
    """Cancel the queued, running and retrying jobs matching the list's filter."""
    async def run(broker: Broker, f: dict[str, str]) -> tuple[str, str]:
        where, typed = job_filter(f)
        permit(request, "manage", where.queue)
        everything = _everything(f)
        cancelled, skipped, after = await _in_rounds(
            lambda at: broker.jobs.cancel_many(where, limit=1000, after=at, all_jobs=everything))
        notice = f"Cancelled {cancelled:,} jobs."
        if skipped:
            notice += f" {skipped:,} skipped (they ended meanwhile)."
        if after is not None:
            notice += " More match: press Cancel again."
        return _list_url(typed), notice
    return await _act(request, "/ui/jobs", run)


@router.post("/ui/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> Response:
    """Cancel one queued, running or retrying job."""
    async def run(broker: Broker, f: dict[str, str]) -> tuple[str, str]:
        await permit_job(request, broker, "manage", job_id)
        found = await broker.jobs.cancel(job_id)
        return _job_url(job_id), f"Cancel requested: the job is {found.status}."
    return await _act(request, _job_url(job_id), run)


@router.post("/ui/jobs/{job_id}/retry")
async def retry_job(request: Request, job_id: str) -> Response:
    """Send one dead or failed job again."""
    async def run(broker: Broker, f: dict[str, str]) -> tuple[str, str]:
        await permit_job(request, broker, "manage", job_id)
        found = await broker.jobs.retry(job_id)
        return _job_url(job_id), f"Job sent again: {found.status} on {found.queue}."
    return await _act(request, _job_url(job_id), run)


@router.post("/ui/jobs/{job_id}/delete")
async def delete_job(request: Request, job_id: str) -> Response:
    """Forget one ended job (and its dead-letter message)."""
    async def run(broker: Broker, f: dict[str, str]) -> tuple[str, str]:
        await permit_job(request, broker, "manage", job_id)
        await broker.jobs.delete(job_id)
        return "/ui/jobs", f"Deleted job {job_id}."
    return await _act(request, _job_url(job_id), run)


@router.post("/ui/queues/{name}/messages/{message_id}/redrive")
async def redrive_message(request: Request, name: str, message_id: str) -> Response:
    """Move one dead letter back to the queue it came from."""
    back = f"/ui/queues/{quote(name, safe='')}"

    async def run(broker: Broker, f: dict[str, str]) -> tuple[str, str]:
        await _permit_source(request, broker, name, message_id)
        source = await dead_letters.redrive_message(broker, name, message_id)
        await _monitor(request).sample()
        return back, f"Moved message {message_id} back to {source}."
    return await _act(request, back, run)


async def _permit_source(request: Request, broker: Broker, name: str, message_id: str
                         ) -> None:
    """`send` on the queue a worker's copy names as its source: whoever sent the message
    chose that attribute (a queue the broker moved it from named this one as its
    dead-letter queue, and takes it back as a whole-queue redrive does)."""
    if scoped(request, "send") is None:
        return  # no look-up: every queue passes
    try:
        wanted = uuid.UUID(message_id)
    except ValueError:
        return  # not an id: the broker refuses it
    below = str(uuid.UUID(int=wanted.int - 1)) if wanted.int else None
    peeked = await broker.peek(name, 1, below)  # the message first, if it is there
    if peeked and peeked[0].id == str(wanted) and peeked[0].source_queue is None and (
            source := dead_letters.source_of(peeked[0])):
        permit(request, "send", source)


@router.post("/ui/queues/{name}/messages/{message_id}/delete")
async def delete_message(request: Request, name: str, message_id: str) -> Response:
    """Delete one message of the queue."""
    back = f"/ui/queues/{quote(name, safe='')}"

    async def run(broker: Broker, f: dict[str, str]) -> tuple[str, str]:
        await dead_letters.delete_message(broker, name, message_id)
        await _monitor(request).sample()
        return back, f"Deleted message {message_id}."
    return await _act(request, back, run)
