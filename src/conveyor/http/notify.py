"""Routes for notifications: a delivery's status, counts by channel and status, and the
suppression list (hard bounces, unsubscribes, gone push subscriptions).

Thin: each route calls `broker.ledger`, which checks its input and raises the same errors
as in-process (422 with the one error shape). Sending goes through a `Notifier` (in-process)
or `conveyor notify send`; a worker that reaches the broker over HTTP uses these routes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from conveyor.broker.channels import BUILTIN_CHANNELS
from conveyor.http.deliveries import CHANNEL_FILTER, UNKNOWN_CHANNEL, TimelineEntryOut
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.errors import error_response
from conveyor.http.wire import json_response
from conveyor.ledger import DELIVERY_STATUSES

router = APIRouter(tags=["notifications"], dependencies=[Depends(checked_json)])
_STATUSES = ", ".join(DELIVERY_STATUSES)
_BUILTIN = ", ".join(BUILTIN_CHANNELS)


class DeliveryOut(BaseModel):
    """A notification's recorded state (times in ms since the epoch)."""

    delivery_id: str
    channel: str
    recipient: str
    status: str = Field(description=f"One of {_STATUSES}.")
    attempts: int
    error: str | None
    provider_id: str | None = Field(description="The provider's id (SMTP queue id, push "
                                                "message URL) once sent.")
    updated_at: int
    expires_at: int
    resends: int = Field(description="Times resent after a crash left it in doubt.")


class CountsOut(BaseModel):
    """Unexpired notifications by channel, then status (every status listed), and how many
    of them were resent after a crash left them in doubt."""

    counts: dict[str, dict[str, int]]
    resent_after_crash: dict[str, int] = Field(description=(
        "By channel (channels with none left out): notifications handed to the provider "
        "again because a worker died after handing them over and before recording the "
        "answer; each may have arrived twice, carrying the same idempotency handle."))


class SuppressionIn(BaseModel):
    """An address (or push endpoint) a channel must skip from now on."""

    model_config = ConfigDict(extra="forbid", strict=True)  # true is not 1
    channel: str = Field(description=f"A known channel ({_BUILTIN}, or an application's "
                                     "own once its `notify-<channel>` queue exists).")
    address: str = Field(description=(
        "What the channel sends to, 1 to 2048 characters, one line, no white space at "
        "either end: an email address (email), a Web Push subscription's https:// "
        "endpoint with a host (push), a registration token of letters, digits, - _ : . "
        "(fcm), a device token of 32 to 200 hex digits (apns), an http:// or https:// "
        "URL with a host (webhook), the URL (apprise)."))
    reason: str = Field("unsubscribed", description="One line, 1 to 4000 characters.")


class SuppressionOut(BaseModel):
    """A suppressed address and why."""

    channel: str
    address: str
    reason: str
    created_at: int


class SuppressionsOut(BaseModel):
    """A page of the suppression list; pass `next` as `after` for the next page."""

    suppressions: list[SuppressionOut]
    next: str | None


@router.get("/v1/notifications/counts", response_model=CountsOut,
            responses=errors(422, said={422: UNKNOWN_CHANNEL}))
async def counts(broker: BrokerDep, channel: Annotated[
        str | None, Query(description=CHANNEL_FILTER)] = None) -> Response:
    """How many notifications are queued, sending, sent, retrying, failed or unknown, and
    how many were resent after a crash."""
    return json_response({"counts": await broker.ledger.counts(channel),
                          "resent_after_crash": await broker.ledger.resent(channel)})


class DeliveryTimelineOut(DeliveryOut):
    """A notification's recorded state and its timeline, oldest first."""

    timeline: list[TimelineEntryOut]


@router.get("/v1/notifications/{delivery_id}", response_model=DeliveryTimelineOut,
            responses=errors(404, 422))
async def status(delivery_id: str, broker: BrokerDep) -> Response:
    """One notification's status by delivery id, with its timeline: queued or held, each
    attempt's hand-over and outcome with the provider's answer (404 when unknown or
    expired)."""
    found = await broker.deliveries.timeline(delivery_id)
    if found is None:
        return error_response(404, "delivery_not_found",
                              f"No notification {delivery_id!r} (unknown or expired).")
    row, entries = found
    return json_response({**{k: getattr(row, k) for k in DeliveryOut.model_fields},
                          "timeline": [e.to_json() for e in entries]})


@router.get("/v1/suppressions", response_model=SuppressionsOut,
            responses=errors(422, said={422: UNKNOWN_CHANNEL + " Or a bad `limit`."}))
async def suppressions(broker: BrokerDep,
                       channel: Annotated[str | None, Query(description=CHANNEL_FILTER)
                                          ] = None,
                       after: Annotated[str | None, Query()] = None,
                       limit: Annotated[int, Query()] = 100) -> Response:
    """The suppression list by channel and address, a page at a time."""
    rows = await broker.ledger.suppressions(channel, after, limit)
    page = [{"channel": r.channel, "address": r.address, "reason": r.reason,
             "created_at": r.created_at} for r in rows]
    last = f"{rows[-1].channel}\x1f{rows[-1].address}" if len(rows) == limit else None
    return json_response({"suppressions": page, "next": last})


@router.post("/v1/suppressions", status_code=204, response_class=Response,
             responses=errors(400, 422, said={422: (
                 "Invalid input: `invalid_input` with `field` `channel` (unknown), "
                 "`address` (not what the channel sends to, empty, too long, control "
                 "characters) or `reason`; nothing is written.")}))
async def suppress(request: SuppressionIn, broker: BrokerDep) -> Response:
    """Suppress an address (an unsubscribe); an address already listed keeps its reason.
    The address is checked as the channel's: what a recipient's address there must be."""
    await broker.ledger.add_suppression(request.channel, request.address, request.reason)
    return Response(status_code=204)


@router.delete("/v1/suppressions", status_code=204, response_class=Response,
               responses=errors(404, 422, said={422: UNKNOWN_CHANNEL}))
async def unsuppress(broker: BrokerDep, channel: Annotated[str, Query(description=(
        "A known channel, as for `POST`; any other name is a 422 `invalid_input`."))],
                     address: Annotated[str, Query()]) -> Response:
    """Take an address off a channel's list (404 when it was not listed; an unknown
    channel is a 422, as for adding and listing)."""
    if not await broker.ledger.unsuppress(channel, address):
        return error_response(404, "suppression_not_found",
                              f"{address!r} is not suppressed on {channel!r}.")
    return Response(status_code=204)
