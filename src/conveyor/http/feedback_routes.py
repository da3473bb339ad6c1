"""Provider feedback webhooks: `POST /v1/feedback/{ses,sendgrid,postmark}`.

Each verifies its own provider's signature or secret (`conveyor.notify.feedback`), so these
paths take no API key: a provider cannot send one. Bad or unsigned payloads get a 4xx and
change nothing; accepted ones answer what was applied. A provider not configured in the
app's `FeedbackSettings` answers 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from conveyor.http.deps import BrokerDep, errors
from conveyor.http.errors import error_response
from conveyor.http.wire import json_response
from conveyor.notify.feedback import (
    Feedback,
    FeedbackRefused,
    FeedbackSettings,
    apply_feedback,
    postmark,
    sendgrid,
)

router = APIRouter(tags=["notifications"])


def _settings(request: Request) -> FeedbackSettings | None:
    found = getattr(request.app.state, "feedback", None)
    return found if isinstance(found, FeedbackSettings) else None


def _sns(request: Request, settings: FeedbackSettings) -> Any:
    """The app's SNS verifier (its certificate cache lives as long as the app)."""
    from conveyor.notify.sns import AWS_CERT_HOSTS, SnsVerifier, fetcher

    verifier = getattr(request.app.state, "sns_verifier", None)
    if verifier is None:
        verifier = SnsVerifier(topics=None if settings.sns_any_topic else settings.sns_topics,
                               cert_hosts=settings.sns_cert_hosts or AWS_CERT_HOSTS,
                               fetch=fetcher(settings.sns_ca_file))
        request.app.state.sns_verifier = verifier
    return verifier


@router.post("/v1/feedback/{provider}", responses=errors(400, 401, 403, 404, 422))
async def feedback(provider: str, request: Request, broker: BrokerDep) -> Response:
    """Bounces and complaints from an email provider (ses via SNS, sendgrid, postmark):
    hard bounces and complaints suppress the address, soft bounces are counted."""
    settings = _settings(request)
    body = await request.body()
    headers = dict(request.headers)
    try:
        events: list[Feedback]
        if settings is None:
            events = _not_configured(provider)
        elif provider == "sendgrid" and settings.sendgrid_key:
            events = sendgrid(headers, body, settings.sendgrid_key)
        elif provider == "postmark" and settings.postmark_secret:
            events = postmark(headers, body, settings.postmark_secret)
        elif provider == "ses" and (settings.sns_topics or settings.sns_any_topic):
            events = await _sns(request, settings).receive(body)
        else:
            events = _not_configured(provider)
    except FeedbackRefused as exc:
        return error_response(exc.status, exc.code, exc.message)
    s = settings or FeedbackSettings()
    applied = await apply_feedback(broker, events, channel=s.channel,
                                   soft_limit=s.soft_limit, soft_window=s.soft_window)
    return json_response({"events": len(events), **applied})


def _not_configured(provider: str) -> list[Feedback]:
    raise FeedbackRefused(f"Feedback from {provider!r} is not configured on this server.", 404)
