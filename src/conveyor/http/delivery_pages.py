"""The dashboard's delivery view: `/ui/deliveries` (search by recipient or notification
id, the recipient's notifications with their states, counts per channel and status now
and as a chart over time) and `/ui/deliveries/{id}` (a notification and its timeline).

Read-only pages, served like the others (`conveyor.http.dashboard.render_page`: the CSRF
cookie, the security headers); they need what `GET /v1/notifications` needs (receive on
`notify-*`, see `conveyor.http.auth`). The chart reads `GET /v1/notifications/series`.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from conveyor.broker.broker import Broker
from conveyor.dashboard.views import delivery_counts
from conveyor.errors import InvalidInput
from conveyor.http.dashboard import render_page
from conveyor.ledger import DELIVERY_STATUSES

router = APIRouter(include_in_schema=False)

BUCKETS = {10: "10 s", 60: "1 min", 600: "10 min", 3600: "1 h"}
"""The chart's bucket choices in seconds, with their labels."""
_WINDOWS = {10: (20, "20 min"), 60: (120, "2 h"), 600: (1440, "1 day"),
            3600: (10080, "7 days")}
"""Each bucket's window: 120 to 168 bars."""
_LIST_LIMIT = 200


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


@router.get("/ui/deliveries")
async def deliveries_page(request: Request, q: str = "", bucket: int = 60,
                          channel: str = "") -> Response:
    """Search by recipient or notification id; the recipient's notifications; counts now
    and over time."""
    broker = _broker(request)
    q = q.strip()[:200]
    rows = []
    error = ""
    if q:
        try:
            if await broker.ledger.get(q) is not None:
                return RedirectResponse(f"/ui/deliveries/{quote(q, safe='')}", 303)
            rows = await broker.recipients.notifications(q, _LIST_LIMIT)
        except InvalidInput as exc:
            error = exc.message
    counts = await delivery_counts(broker)
    bucket = bucket if bucket in BUCKETS else 60
    return render_page(request, "deliveries.html", q=q, rows=rows, search_error=error,
                       counts=counts, statuses=DELIVERY_STATUSES, buckets=BUCKETS,
                       bucket=bucket, minutes=_WINDOWS[bucket][0],
                       window=_WINDOWS[bucket][1],
                       channel=channel[:200] if channel in counts else "",
                       limit=_LIST_LIMIT)


@router.get("/ui/deliveries/{delivery_id}")
async def delivery_page(request: Request, delivery_id: str) -> Response:
    """A notification: its recorded state and its timeline with the provider's answers."""
    try:
        found = await _broker(request).deliveries.timeline(delivery_id)
    except InvalidInput:
        found = None
    if found is None:
        return render_page(request, "delivery_missing.html", status=404,
                           delivery_id=delivery_id)
    row, entries = found
    return render_page(request, "delivery.html", row=row, timeline=entries)
