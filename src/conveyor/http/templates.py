"""Routes for templates per locale: `PUT`/`GET`/`DELETE /v1/templates/{name}`,
`GET /v1/templates` (a page by name), and `POST /v1/templates/{name}/preview`, which
renders a template for a recipient (their locale, their channels) and sends and writes
nothing.

Thin: bodies are shaped by pydantic, then checked by the one parser
(`conveyor.locales.parse_template`), so the errors are the same as in-process.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from conveyor.errors import TemplateNotFound
from conveyor.http.deps import BrokerDep, checked_json, errors
from conveyor.http.wire import json_response
from conveyor.locales import template_doc
from conveyor.notify.locales import preview_template

router = APIRouter(tags=["templates"], dependencies=[Depends(checked_json)])


class PartsIn(BaseModel):
    """Template sources (Jinja syntax, rendered in a sandbox)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # true is not 1
    subject: str | None = Field(None, examples=["Welcome, {{ name }}"])
    text: str | None = Field(None, examples=["Hello {{ name }}"])
    html: str | None = Field(None, description="Autoescaped.")


class LocaleIn(PartsIn):
    """One locale: `text` is required; `channels` overrides parts per channel."""

    channels: dict[str, PartsIn] = Field(default_factory=dict, description=(
        "Per channel (email, push, fcm, apns, ...), parts that replace the locale's."))


class TemplateIn(BaseModel):
    """A template: its locales and the one to fall back to."""

    model_config = ConfigDict(extra="forbid", strict=True)  # true is not 1
    default_locale: str | None = Field("en", description=(
        "Tried last for every recipient; null: no fallback to another language."))
    locales: dict[str, LocaleIn] = Field(description=(
        "Per language tag (en, pt, pt-BR, ...): a recipient of pt-BR gets pt-BR, else pt, "
        "else default_locale."))
    name: str | None = Field(None, description="Ignored unless it differs from the path.")
    updated_at: int | None = Field(None, description="Ignored (what GET answers).")


class TemplateOut(TemplateIn):
    """A stored template."""

    name: str
    updated_at: int = Field(description="When it was last put (ms since the epoch).")


class TemplateListOut(BaseModel):
    """A page of templates by name; `next` is the `after` of the next page (null: last)."""

    templates: list[TemplateOut]
    next: str | None


class PreviewIn(BaseModel):
    """What to render: for a recipient (their locale and channels), or for a locale."""

    model_config = ConfigDict(extra="forbid", strict=True)  # true is not 1
    recipient: str | None = Field(None, description="A recipient id.")
    locale: str | None = Field(None, description="Instead of (or over) the recipient's.")
    channels: list[str] | None = Field(None, description=(
        "Only these channels (default: the recipient's, or all address channels)."))
    data: dict[str, Any] = Field(default_factory=dict)


class RenderedOut(BaseModel):
    """One channel's rendering."""

    locale: str = Field(description="The locale of the chain that rendered.")
    subject: str
    text: str
    html: str | None


class PreviewOut(BaseModel):
    """The template rendered per channel; nothing was sent or written."""

    template: str
    recipient: str | None
    locale: str | None = Field(description="The locale asked for (the recipient's).")
    channels: dict[str, RenderedOut]


@router.put("/v1/templates/{name}", response_model=TemplateOut,
            responses=errors(400, 422))
async def put_template(name: str, body: TemplateIn, request: Request,
                       broker: BrokerDep) -> Response:
    """Create or replace a template (a syntax error, or what can never render: an unknown
    filter, `1/0`: 422 `invalid_template`, with the part and its line)."""
    doc = body.model_dump(exclude_none=True, exclude={"updated_at"})
    if "default_locale" in body.model_fields_set and body.default_locale is None:
        doc["default_locale"] = None  # null means no fallback, not "left out"
    stored = await broker.templates.put(name, doc)
    _forget(request, name)
    return json_response(template_doc(stored))


@router.get("/v1/templates/{name}", response_model=TemplateOut, responses=errors(404, 422))
async def get_template(name: str, broker: BrokerDep) -> Response:
    """One template (404 when unknown)."""
    found = await broker.templates.get(name)
    if found is None:
        raise TemplateNotFound(f"No template {name!r}.")
    return json_response(template_doc(found))


@router.delete("/v1/templates/{name}", status_code=204, response_class=Response,
               responses=errors(404, 422))
async def delete_template(name: str, request: Request, broker: BrokerDep) -> Response:
    """Delete a template (404 when unknown)."""
    if not await broker.templates.delete(name):
        raise TemplateNotFound(f"No template {name!r}.")
    _forget(request, name)
    return Response(status_code=204)


@router.get("/v1/templates", response_model=TemplateListOut, responses=errors(422))
async def list_templates(broker: BrokerDep,
                         after: Annotated[str, Query(max_length=100)] = "",
                         limit: Annotated[int, Query()] = 100) -> Response:
    """Templates by name, a page of `limit` after the name `after`."""
    found = await broker.templates.list(after, limit)
    return json_response({"templates": [template_doc(t) for t in found],
                          "next": found[-1].name if len(found) == limit else None})


@router.post("/v1/templates/{name}/preview", response_model=PreviewOut,
             responses=errors(400, 404, 422))
async def preview(name: str, body: PreviewIn, broker: BrokerDep) -> Response:
    """Render a template for a recipient, per channel they have an address on, in the
    first locale of their fallback chain the template has; sends and writes nothing.
    422 `template_locale_missing` when the chain finds no locale; 422 `invalid_template`
    when a render fails (an error, or past its limits: 0.1 s of CPU, 2 MiB of text)."""
    found = await preview_template(broker, name, body.data, recipient=body.recipient,
                                   locale=body.locale, channels=body.channels)
    return json_response(found)



def _forget(request: Request, name: str) -> None:
    """This server's own notify fan-out sees a change at once (other nodes within their
    refresh time)."""
    notifier = getattr(request.app.state, "recipient_notifier", None)
    if notifier is not None:
        notifier.templates.stored.forget(name)
