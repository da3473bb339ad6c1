"""The dashboard's routes: pages at `/` and `/ui/...`, its live feed, its forms.

Pages are server-rendered (Jinja2, autoescaped); `/ui/events` is a server-sent event stream
of the queues table (every sample of the app's `Monitor`), which the page applies in place.
Forms POST with the session's CSRF token (`conveyor.dashboard.csrf`) and answer with a
redirect back to the page, carrying a notice.

With API keys the dashboard is `manage`'s: a queue's page takes it on that queue
(`conveyor.http.auth.required`), and the pages that span queues show a key only the
queues it may manage (the figures of other rooms, which sum every queue, only to a key
that may manage every queue).
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from conveyor.broker import dead_letters
from conveyor.broker.broker import Broker
from conveyor.dashboard import csrf
from conveyor.dashboard.series import Monitor, Snapshot
from conveyor.dashboard.views import (
    DEFAULT_SECTIONS,
    PEEK_LIMIT,
    STATIC,
    Section,
    SectionProvider,
    environment,
    queue_row,
    queue_rows,
)
from conveyor.digits import integer
from conveyor.errors import ConveyorError, InvalidInput, QueueNotFound
from conveyor.forgery import media_type
from conveyor.heartbeats import aggregate, schedules_of
from conveyor.http.auth import allowed, permit, scoped
from conveyor.http.wire import json_response
from conveyor.http.workers import visible_workers
from conveyor.models import Body, BodyKind, QueueStats, SendEntry

router = APIRouter(include_in_schema=False)

_env = environment()
_STATIC_FILES = frozenset(p.name for p in STATIC.iterdir() if p.is_file())
_MAX_FORM_BYTES = 1_100_000
_FORM_TYPE = "application/x-www-form-urlencoded"  # what the pages' forms send
_WORKERS_REFRESH = 5  # seconds: about a heartbeat
_FLOW_CHILDREN = 200  # shown per node: a chord of 10,000 stays a page


def _monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def _providers(request: Request) -> list[SectionProvider]:
    """`app.state.dashboard_sections`: the hook other rooms add their figures to."""
    state = request.app.state
    if not hasattr(state, "dashboard_sections"):
        state.dashboard_sections = list(DEFAULT_SECTIONS)
    providers: list[SectionProvider] = state.dashboard_sections
    return providers


_PAGE_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff", "referrer-policy": "same-origin"}


def _page(request: Request, template: str, *, status: int = 200, **context: Any
          ) -> Response:
    token, new = csrf.session_token(request)
    html = _env.get_template(template).render(
        csrf_token=token, notice=request.query_params.get("notice", ""),
        error=request.query_params.get("error", ""), **context)
    response = HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)
    if new:
        csrf.set_cookie(response, token, request.url.scheme == "https")
    return response


def render_page(request: Request, template: str, *, status: int = 200, **context: Any
                ) -> Response:
    """A dashboard page from `template`, with the session's CSRF token and the security
    headers every page gets (for the pages other modules serve)."""
    return _page(request, template, status=status, **context)


def refused_page(reason: str, status: int, headers: Mapping[str, str] | None = None, *,
                 title: str = "Refused") -> Response:
    """The dashboard's page for a refused request (`refused.html`: the title, the reason
    and a way back), with the security headers every page gets; for the router's 404 and
    405 on a dashboard path (`conveyor.http.errors`)."""
    return HTMLResponse(_env.get_template("refused.html").render(reason=reason, title=title),
                        status, headers={**_PAGE_HEADERS, **(headers or {})})


# pages --------------------------------------------------------------------------------
@router.get("/")
async def index(request: Request, prefix: str = "", after: str | None = None) -> Response:
    """The queues with their counts and rates, live, a page at a time (by name, those
    starting with `prefix`, after `after`); figures from other rooms below."""
    monitor = _monitor(request)
    snapshot = _visible(request, await monitor.current())
    sections = await _sections(request) if allowed(request, "manage", None) else []
    page = queue_rows(snapshot, prefix[:80], after[:80] if after else None)
    return _page(request, "index.html", page=page, rows=page.rows, sections=sections,
                 interval=monitor.interval)


def _visible(request: Request, snapshot: Snapshot) -> Snapshot:
    """The queues of `snapshot` that the request's key may manage."""
    key = scoped(request, "manage")
    if key is None:
        return snapshot
    names = [n for n in snapshot.names if key.allows("manage", n)]
    return Snapshot(snapshot.at, {n: snapshot.queues[n] for n in names},
                    {n: p for n, p in snapshot.points.items() if key.allows("manage", n)},
                    names)


async def _sections(request: Request) -> list[Section]:
    broker = _broker(request)
    found = await asyncio.gather(*(p(broker) for p in _providers(request)),
                                 return_exceptions=True)
    return [s for s in found if isinstance(s, Section)]


@router.get("/ui/queues/{name}")
async def queue_page(request: Request, name: str) -> Response:
    """A queue: attributes, counts, charts, messages (peeked), dead letters, actions."""
    broker = _broker(request)
    try:
        queue = await broker.get_queue(name)
    except QueueNotFound:
        return _page(request, "missing.html", status=404, name=name)
    stats = await broker.queue_stats(name)
    peeked = await broker.peek(name, PEEK_LIMIT)
    # Dead letters: moved here by the broker, or copied here by a worker (any body, a job
    # or not: the copy names its source in an attribute).
    dead = [(m, source, dead_letters.error_of(m)) for m in peeked
            if (source := dead_letters.source_of(m))]
    sources = sorted(s for s in {
        q.name for q in (await _monitor(request).current()).queues.values()
        if q.attributes.dead_letter_queue == name} | {d[1] for d in dead}
        if allowed(request, "manage", s))
    tasks = (await broker.redrive.list(name))[:5]
    dlq_stats: QueueStats | None = None
    if queue.attributes.dead_letter_queue and allowed(
            request, "manage", queue.attributes.dead_letter_queue):
        try:
            dlq_stats = await broker.queue_stats(queue.attributes.dead_letter_queue)
        except QueueNotFound:
            dlq_stats = None
    point = _monitor(request).latest.points.get(name)
    row = queue_row(queue, point)
    return _page(request, "queue.html", queue=queue, attributes=queue.attributes.to_json(),
                 stats=stats, row=row, messages=peeked, dead=dead, sources=sources,
                 tasks=tasks, dlq_stats=dlq_stats, interval=_monitor(request).interval,
                 body_kind_json=BodyKind.JSON)


@router.get("/ui/workers")
async def workers_page(request: Request) -> Response:
    """Live workers (queues, running jobs, last beat), their schedules and task counts."""
    broker = _broker(request)
    found = visible_workers(request, "manage", await broker.workers.list())
    tasks = [c for _, c in sorted(aggregate(found).items())]
    return _page(request, "workers.html", workers=found, schedules=schedules_of(found),
                 tasks=tasks, now=broker.wall_now(), refresh=_WORKERS_REFRESH)


@router.get("/ui/flows/{flow_id}")
async def flow_page(request: Request, flow_id: str) -> Response:
    """A flow's tree: each job above the jobs it waits for (`conveyor.flows`)."""
    try:
        flow = await _broker(request).flows.get(flow_id)
    except ConveyorError as exc:  # unknown, expired, or not an id
        return _page(request, "flow.html", flow=None, flow_id=flow_id[:80],
                     reason=exc.message, status=404)
    permit(request, "manage", *{n.queue for n in flow.nodes})
    waited_for = {child for n in flow.nodes for child in n.after}
    counts = Counter(n.state for n in flow.nodes)
    return _page(request, "flow.html", flow=flow, nodes=flow.nodes, limit=_FLOW_CHILDREN,
                 roots=[n.node for n in flow.nodes if n.node not in waited_for],
                 counts=sorted(counts.items()))


@router.get("/ui/queues/{name}/series")
async def queue_series(request: Request, name: str) -> Response:
    """The queue's recent points for its charts."""
    return json_response({"queue": name, "interval": _monitor(request).interval,
                          "points": [p.to_json() for p in _monitor(request).series(name)]})


@router.get("/ui/events")
async def events(request: Request, queue: str | None = None, prefix: str = "",
                 after: str | None = None) -> Response:
    """Server-sent events: `queues` (one page of the table, compact, as `/` shows it with
    the same `prefix` and `after`) after every sample; with `?queue=NAME`, `point` events
    for that queue only."""
    monitor = _monitor(request)
    if queue is not None:
        permit(request, "manage", queue)

    async def feed() -> AsyncIterator[bytes]:
        yield f"retry: {int(monitor.interval * 1000)}\n\n".encode()
        snapshot = await monitor.current()
        last = 0.0
        while not await request.is_disconnected():
            if snapshot.at != last:
                last = snapshot.at
                yield _event(queue, _visible(request, snapshot), prefix[:80],
                             after[:80] if after else None)
            snapshot = await monitor.wait_for_sample(monitor.interval * 1.5)
            if snapshot.at == last:  # no background sampler (no lifespan): sample here
                snapshot = await monitor.current()

    return StreamingResponse(feed(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


def _event(queue: str | None, snapshot: Any, prefix: str = "",
           after: str | None = None) -> bytes:
    if queue is None:
        data = {"at": snapshot.at, **queue_rows(snapshot, prefix, after).json()}
        return b"event: queues\ndata: " + orjson.dumps(data) + b"\n\n"
    point = snapshot.points.get(queue)
    data = {"queue": queue, "point": point.to_json() if point else None}
    return b"event: point\ndata: " + orjson.dumps(data) + b"\n\n"


@router.get("/ui/static/{filename}")
async def static(filename: str) -> Response:
    """The dashboard's scripts, styles and the vendored chart library."""
    if filename not in _STATIC_FILES:
        return Response("Not found.", 404, media_type="text/plain")
    media = mimetypes.guess_type(filename)[0] or "text/plain"
    return Response((STATIC / filename).read_bytes(), media_type=media,
                    headers={"cache-control": "public, max-age=3600"})


# actions ------------------------------------------------------------------------------
async def _form(request: Request) -> tuple[dict[str, str], Response | None]:
    """The urlencoded form, or the page refusing it (413 when too large; 403 for another
    content type, as a cross-site `text/plain` post is a forgery, and when the CSRF check
    fails)."""
    raw = await request.body()
    if len(raw) > _MAX_FORM_BYTES:
        return {}, refused_page("The form is too large.", 413)
    if media_type(request.headers.get("content-type")) != _FORM_TYPE:
        return {}, refused_page("The form must be sent as "
                                "application/x-www-form-urlencoded.", 403)
    fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"),
                                            keep_blank_values=True).items()}
    reason = csrf.check(request, fields.get(csrf.FIELD))
    return fields, None if reason is None else refused_page(reason, 403)


def _back(name: str | None, *, notice: str = "", error: str = "") -> Response:
    path = "/" if name is None else f"/ui/queues/{quote(name, safe='')}"
    query = urlencode({k: v for k, v in (("notice", notice), ("error", error)) if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


async def _act(request: Request, name: str | None, action: Any) -> Response:
    fields, refused = await _form(request)
    if refused is not None:
        return refused
    try:
        notice = await action(_broker(request), fields)
    except ConveyorError as exc:
        return _back(name, error=exc.message)
    await _monitor(request).sample()  # show the effect at once
    return _back(name, notice=notice)


@router.post("/ui/queues")
async def create_queue(request: Request) -> Response:
    """Create a queue from the front page's form."""
    async def run(broker: Broker, f: dict[str, str]) -> str:
        queue, created = await broker.create_queue(f.get("name", "").strip())
        return f"Created {queue.name}." if created else f"{queue.name} already exists."
    return await _act(request, None, run)


def _whole(form: dict[str, str], name: str, label: str) -> int | None:
    """A form's whole number (None when left empty); anything else is refused, not taken
    for "not given" (the broker checks the range, as for the API)."""
    text = form.get(name, "").strip()
    if not text:
        return None
    value = integer(text, signed=True)
    if value is None:
        raise InvalidInput(f"{label} must be a whole number, not {text[:40]!r}.", field=name)
    return value


@router.post("/ui/queues/{name}/send")
async def send_test(request: Request, name: str) -> Response:
    """Send one message typed into the queue page."""
    async def run(broker: Broker, f: dict[str, str]) -> str:
        text = f.get("body", "")
        body = Body(text)
        if f.get("json"):
            from conveyor.http.parse import loads
            from conveyor.models import dumps_json
            body = Body(dumps_json(loads(text.encode())), BodyKind.JSON)
        delay = _whole(f, "delay", "The delay")
        priority = _whole(f, "priority", "The priority") or 0
        [sent] = await broker.send(name, [SendEntry(body, delay, priority=priority)])
        return f"Sent message {sent.id}."
    return await _act(request, name, run)


@router.post("/ui/queues/{name}/purge")
async def purge(request: Request, name: str) -> Response:
    """Delete every message of the queue."""
    async def run(broker: Broker, f: dict[str, str]) -> str:
        return f"Purged {await broker.purge_queue(name):,} messages."
    return await _act(request, name, run)


@router.post("/ui/queues/{name}/pause")
async def pause(request: Request, name: str) -> Response:
    """Pause deliveries (sends are still accepted)."""
    async def run(broker: Broker, f: dict[str, str]) -> str:
        await broker.update_queue(name, {"paused": True})
        return "Paused: no deliveries until resumed."
    return await _act(request, name, run)


@router.post("/ui/queues/{name}/resume")
async def resume(request: Request, name: str) -> Response:
    """Resume deliveries."""
    async def run(broker: Broker, f: dict[str, str]) -> str:
        await broker.update_queue(name, {"paused": False})
        return "Resumed."
    return await _act(request, name, run)


@router.post("/ui/queues/{name}/redrive")
async def redrive(request: Request, name: str) -> Response:
    """Move this dead-letter queue's messages back to the queues they came from."""
    async def run(broker: Broker, f: dict[str, str]) -> str:
        task = await broker.start_redrive(name, wait=2.0)
        if task.status == "completed":
            return f"Redrove {task.moved:,} messages to their source queues."
        return f"Redrive {task.status}: {task.moved:,} of {task.to_move:,} moved so far."
    return await _act(request, name, run)
