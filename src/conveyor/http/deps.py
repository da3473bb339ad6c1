"""What routes share: the broker of the app, and the error responses they document."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request

from conveyor.broker.broker import Broker
from conveyor.http.schemas import ErrorOut


def broker_of(request: Request) -> Broker:
    """The app's broker (set by `create_app`)."""
    broker: Broker = request.app.state.broker
    return broker


BrokerDep = Annotated[Broker, Depends(broker_of)]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error responses a route may give."""
    text = {400: "Malformed JSON.", 404: "Unknown queue or task.",
            409: "Conflicts with the current state.", 413: "Request over the size limit.",
            422: "Invalid input.", 503: "Storage unavailable."}
    return {s: {"model": ErrorOut, "description": text.get(s, "Error.")}
            for s in (*statuses, 503)}
