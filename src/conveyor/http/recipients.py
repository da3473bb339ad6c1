"""Routes for recipients: `PUT`/`GET`/`DELETE /v1/recipients/{id}`, and
`POST /v1/recipients/{id}/notify`, which fans a notification out to that person's channels
(see `conveyor.notify.people`).

Thin: bodies are shaped by pydantic, then checked by the one parser
(`conveyor.recipients.parse_recipient`), so the errors are the same as in-process.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from conveyor.broker.broker import Broker
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.errors import error_response
from conveyor.http.notify import DeliveryOut
from conveyor.http.wire import json_response
from conveyor.notify.channel import Channel
from conveyor.notify.notifier import Notifier
from conveyor.notify.people import PersonNotification, notify_recipient, tally
from conveyor.recipients import ADDRESS_CHANNELS, Category, recipient_json

router = APIRouter(tags=["recipients"], dependencies=[Depends(checked_json)])


class QuietHoursIn(BaseModel):
    """A daily window in the recipient's time zone, 24-hour `HH:MM`; `start` after `end`
    crosses midnight."""

    model_config = ConfigDict(extra="forbid", strict=True)  # 1 is not true
    start: str = Field(examples=["22:00"])
    end: str = Field(examples=["07:00"])


class RecipientIn(BaseModel):
    """A recipient; fields left out take their defaults (replacing is whole)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # 1 is not true
    timezone: str = Field("UTC", description="An IANA zone name, e.g. Europe/Berlin.")
    locale: str = Field("en", description="A language tag, e.g. pt-BR.")
    addresses: dict[str, Any] = Field(default_factory=dict, description=(
        f"Per channel ({', '.join(ADDRESS_CHANNELS)}), a list of addresses: email "
        "addresses, Web Push subscriptions ({endpoint, keys: {p256dh, auth}}), FCM and "
        "APNs device tokens."))
    preferences: dict[str, dict[str, bool]] = Field(default_factory=dict, description=(
        "Per category, per channel: false opts out (channels are on by default), true "
        "opts in (needed for opt-in categories)."))
    quiet_hours: QuietHoursIn | None = None


class RecipientOut(RecipientIn):
    """A stored recipient."""

    id: str
    updated_at: int = Field(description="When it was last put (ms since the epoch).")


class NotifyIn(BaseModel):
    """One notification for this recipient."""

    model_config = ConfigDict(extra="forbid", strict=True)  # 1 is not true
    category: str = Field(description="What kind of notification (preferences are kept "
                                      "per category).")
    template: str = Field(description="The template the delivery workers render.")
    data: dict[str, Any] = Field(default_factory=dict)
    critical: bool = Field(False, description="Bypass preferences and quiet hours.")
    opt_in: bool = Field(False, description="Only channels the recipient opted in to.")
    channels: list[str] | None = Field(None, description="Only these channels.")
    idempotency_key: str | None = Field(None, description="The same key again sends "
                                                          "nothing.")
    digest: dict[str, Any] | None = Field(None, examples=[{"key": "comments",
                                                            "window": "10m"}],
                                          description=(
        "Merge into the recipient's digest for `key`: one message per address when the "
        "`window` (30s, 10m, 2h, 1d, or seconds; up to 7 days) ends, whose template gets "
        "`events` (each notification's data) and `count`. Critical categories ignore it. "
        "A malformed digest is a 400 `invalid_digest`."))


class PlannedOut(BaseModel):
    """What became of one address."""

    channel: str
    address: str
    delivery_id: str
    status: str = Field(description="queued, held (until release_at), digested (into a "
                                    "digest released at release_at), skipped (reason) or "
                                    "duplicate (made before: nothing new was sent).")
    reason: str | None
    release_at: int | None


class NotifyOut(BaseModel):
    """The fan-out, address by address, and how many went each way."""

    recipient: str
    deliveries: list[PlannedOut]
    queued: int
    held: int
    skipped: int = Field(description="Addresses skipped; the `none` row that says nothing "
                                     "is left counts only for a recipient with no address "
                                     "(or no locale of the template).")
    digested: int = 0
    duplicate: int = 0


@router.put("/v1/recipients/{recipient_id}", response_model=RecipientOut,
            responses=errors(400, 422))
async def put_recipient(recipient_id: str, body: RecipientIn, broker: BrokerDep) -> Response:
    """Create or replace a recipient."""
    stored = await broker.recipients.put(recipient_id, body.model_dump(exclude_unset=True))
    return json_response(recipient_json(stored))


@router.get("/v1/recipients/{recipient_id}", response_model=RecipientOut,
            responses=errors(404, 422))
async def get_recipient(recipient_id: str, broker: BrokerDep) -> Response:
    """One recipient (404 when unknown)."""
    found = await broker.recipients.get(recipient_id)
    if found is None:
        return error_response(404, "recipient_not_found", f"No recipient {recipient_id!r}.")
    return json_response(recipient_json(found))


@router.delete("/v1/recipients/{recipient_id}", status_code=204, response_class=Response,
               responses=errors(404, 422))
async def delete_recipient(recipient_id: str, broker: BrokerDep) -> Response:
    """Delete a recipient (404 when unknown); their delivery rows stay until they expire."""
    if not await broker.recipients.delete(recipient_id):
        return error_response(404, "recipient_not_found", f"No recipient {recipient_id!r}.")
    return Response(status_code=204)


@router.post("/v1/recipients/{recipient_id}/notify", status_code=202,
             response_model=NotifyOut, responses=errors(400, 404, 422))
async def notify(recipient_id: str, body: NotifyIn, request: Request,
                 broker: BrokerDep) -> Response:
    """Fan a notification out to the recipient's channels by their preferences: each
    address is queued, held for quiet hours, skipped with the reason (opted out,
    suppressed, no address), or a duplicate of one made before (nothing new is sent).
    A template neither stored nor among the server's file
    templates (`serve --templates`) is a 404 `template_not_found`, and nothing is sent."""
    n = PersonNotification(recipient_id, Category(body.category, body.critical, body.opt_in),
                           body.template, body.data, body.idempotency_key,
                           None if body.channels is None else tuple(body.channels),
                           body.digest)
    planned = await notify_recipient(_notifier(request, broker), n, broker.wall_now())
    return json_response({"recipient": recipient_id,
                          "deliveries": [p.to_json() for p in planned], **tally(planned)},
                         status=202)


def _notifier(request: Request, broker: Broker) -> Notifier:
    """The app's enqueue-only notifier: every address channel by name (the delivery
    workers run the real ones and render the templates), and the workers' file templates
    the app was given, to check names against."""
    notifier: Notifier | None = getattr(request.app.state, "recipient_notifier", None)
    if notifier is None:
        notifier = Notifier(broker, channels={c: Channel() for c in ADDRESS_CHANNELS},
                            templates=getattr(request.app.state, "file_templates", None))
        request.app.state.recipient_notifier = notifier
    return notifier


class RecipientNotificationsOut(BaseModel):
    """A recipient's notifications with their state, newest first."""

    recipient: str
    notifications: list[DeliveryOut]


@router.get("/v1/notifications", response_model=RecipientNotificationsOut,
            responses=errors(422))
async def notifications(broker: BrokerDep,
                        recipient: Annotated[str, Query(description="A recipient id.")],
                        limit: Annotated[int, Query()] = 100) -> Response:
    """One recipient's notifications (made through `POST /v1/recipients/{id}/notify`)
    with their current state: queued, held, digested (merged into a digest, which is a
    notification of its own), sending, sent, retrying, failed, unknown or skipped (the
    reason in `error`)."""
    rows = await broker.recipients.notifications(recipient, limit)
    return json_response({"recipient": recipient, "notifications": [
        {k: getattr(r, k) for k in DeliveryOut.model_fields} for r in rows]})
