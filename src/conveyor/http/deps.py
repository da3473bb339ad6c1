"""What routes share: the broker of the app, and the error responses they document."""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import HTTPConnection, Request

from conveyor.broker.broker import Broker
from conveyor.errors import InvalidInput
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


async def single_values(connection: HTTPConnection) -> None:
    """An app dependency: a query parameter that an API route takes once, given more than
    once (`?channel=fax&channel=email`), is a 422 `invalid_input` naming it. FastAPI kept
    the last one silently, so a filter the client thought it set was another. Async
    although it awaits nothing: FastAPI runs a plain function in a thread, on every
    request."""
    query = connection.query_params
    if len(query.multi_items()) == len(query):  # no name repeated: the usual case
        return
    route: Any = connection.scope.get("route")
    # The API's routes only: dashboard pages read their query themselves, and a
    # WebSocket cannot be answered with an error response.
    if connection.scope["type"] != "http" or not getattr(route, "include_in_schema", False):
        return
    given = Counter(name for name, _ in query.multi_items())
    for name in _single_query_names(route.dependant):
        if given[name] > 1:
            raise InvalidInput(f"The query parameter {name[:60]} is given {given[name]} "
                               "times; give it once.", field=name)


def _single_query_names(dependant: Dependant) -> Iterator[str]:
    """The names of the single-value query parameters of a route and its dependencies."""
    for field in dependant.query_params:
        if not _is_sequence(field.field_info.annotation):
            yield field.alias
    for sub in dependant.dependencies:
        yield from _single_query_names(sub)


def _is_sequence(annotation: Any) -> bool:
    """Whether a parameter's type takes a list (`list[str] | None`): those repeat."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_is_sequence(arg) for arg in get_args(annotation))
    if origin is Annotated:
        return _is_sequence(get_args(annotation)[0])
    return origin in (list, set, frozenset, tuple)


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
