"""What routes share: the broker of the app, and the error responses they document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request

from conveyor.broker.broker import Broker
from conveyor.http.parse import check_body
from conveyor.http.schemas import ErrorOut, SendRequest

RAW_BODY_MODELS: tuple[type[BaseModel], ...] = (SendRequest,)
"""Request bodies parsed without pydantic (for speed), documented with these models."""


def broker_of(request: Request) -> Broker:
    """The app's broker (set by `create_app`)."""
    broker: Broker = request.app.state.broker
    return broker


BrokerDep = Annotated[Broker, Depends(broker_of)]


async def checked_json(request: Request) -> None:
    """A router dependency: the body is JSON storage can keep (see `parse.check_body`),
    checked before pydantic decodes it with the standard library."""
    check_body(await request.body())


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a JSON body that a route parses itself (the model must be listed in
    `RAW_BODY_MODELS` so that its schema is among the components)."""
    assert model in RAW_BODY_MODELS
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def add_raw_body_schemas(schema: dict[str, Any]) -> dict[str, Any]:
    """Put the schemas of `RAW_BODY_MODELS` (and the models they use) in an OpenAPI document."""
    _, defs = models_json_schema([(m, "validation") for m in RAW_BODY_MODELS],
                                 ref_template="#/components/schemas/{model}")
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
    return schema


def errors(*statuses: int, said: Mapping[int, str] | None = None
           ) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error responses a route may give; `said` words a status
    for this route (its codes and causes) instead of the general text."""
    text = {400: "Malformed JSON.", 404: "Unknown queue or task.",
            409: "Conflicts with the current state.", 413: "Request over the size limit.",
            422: "Invalid input.", 503: "Storage unavailable.", **(said or {})}
    return {s: {"model": ErrorOut, "description": text.get(s, "Error.")}
            for s in (*statuses, 503)}
