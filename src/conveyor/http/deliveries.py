"""Routes of the delivery view: counts per channel and status over time
(`GET /v1/notifications/series`); a notification's timeline is part of
`GET /v1/notifications/{id}` (`conveyor.http.notify`).

Registered before `conveyor.http.notify`, whose `/v1/notifications/{id}` would otherwise
take `series` for an id. Thin: `broker.deliveries` checks the input.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from conveyor.broker.channels import BUILTIN_CHANNELS
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.wire import json_response

router = APIRouter(tags=["notifications"], dependencies=[Depends(checked_json)])

CHANNEL_FILTER = (f"One channel (default: all): {', '.join(BUILTIN_CHANNELS)}, or an "
                  "application's own channel once a notifier made its `notify-<channel>` "
                  "queue; any other name is a 422 `invalid_input` naming the channels.")
"""How a `channel` query parameter is documented (here and in `conveyor.http.notify`)."""
UNKNOWN_CHANNEL = "Invalid input: `invalid_input` with `field` `channel` for an unknown channel."
"""The 422 of a route that filters by channel."""


class TimelineEntryOut(BaseModel):
    """One line of a notification's timeline."""

    state: str = Field(description="queued, held, sending, sent, retrying, failed, "
                                   "suppressed, unknown, skipped (and any state a newer "
                                   "node records, such as digested).")
    at: int = Field(description="When (ms since the epoch).")
    attempt: int = Field(description="0 before the first hand-over to the provider.")
    detail: str | None = Field(description="The provider's answer (SMTP reply, HTTP status "
                                           "and body excerpt) or the reason, cut to 500 "
                                           "characters.")
    provider_id: str | None = Field(description="The provider's id for a sent one (SMTP "
                                                "queue id, push message URL, FCM name, "
                                                "apns-id).")


class SeriesOut(BaseModel):
    """Counts per channel and status over time: `at` lists each bucket's start (ms);
    `counts[channel][status]` has one count per bucket."""

    bucket: int = Field(description="Seconds per bucket.")
    since: int
    until: int
    at: list[int]
    counts: dict[str, dict[str, list[int]]]
    totals: dict[str, dict[str, int]]


@router.get("/v1/notifications/series", response_model=SeriesOut,
            responses=errors(422, said={422: UNKNOWN_CHANNEL + " Or a bad `bucket` or "
                                                               "`minutes`."}))
async def series(broker: BrokerDep,
                 bucket: Annotated[int, Query(description="Seconds per bucket, a multiple "
                                                          "of 10.")] = 60,
                 minutes: Annotated[int, Query(description="How far back.")] = 60,
                 channel: Annotated[str | None, Query(description=CHANNEL_FILTER)
                                    ] = None) -> Response:
    """How many notifications entered each status (queued, held, skipped, sent, retrying,
    failed, unknown) per bucket, by channel: the dashboard's deliveries chart."""
    found = await broker.deliveries.series(bucket, minutes, channel)
    return json_response(found.to_json())
