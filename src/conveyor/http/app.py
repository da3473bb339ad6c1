"""The native HTTP API as an ASGI app.

`create_app(broker)` serves a broker that the caller starts and closes (so that `serve` can
share one broker between this app and the SQS endpoint); `create_app(config)` builds its
own broker and starts and closes it with the app's lifespan. `app_from_env` is the factory
for `uvicorn --factory conveyor.http.app:app_from_env`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI

import conveyor
from conveyor.broker.broker import Broker
from conveyor.config import MAX_REQUEST_BYTES, Config, from_env
from conveyor.connect import open_broker
from conveyor.forgery import normalise_hosts
from conveyor.http import (
    dashboard,
    dashboard_jobs,
    deliveries,
    delivery_pages,
    docs,
    errors,
    explorer,
    feedback_routes,
    flow_routes,
    health,
    job_cancel_routes,
    job_routes,
    messages,
    metrics,
    notify,
    queues,
    recipients,
    stream,
    tasks,
    templates,
    workers,
    wq,
)
from conveyor.http.auth import ApiKeyAuth
from conveyor.http.deps import add_raw_body_schemas, single_values
from conveyor.http.head import HeadAsGet
from conveyor.http.limits import BodyLimit
from conveyor.http.nul import NoNul
from conveyor.notify.feedback import FeedbackSettings

DESCRIPTION = """\
The native JSON API of conveyor: queues and messages with SQS semantics.

Errors are `{"error": {"code", "message"}}` (with `index` and `field` when known): malformed
JSON 400, unknown queue or task 404, conflicts 409, requests over the size limit 413, any other
invalid input 422, storage unavailable 503. Times (`*_at`) are milliseconds since the epoch.

## WebSocket stream

""" + stream.PROTOCOL


def create_app(broker_or_config: Broker | Config, *,
               max_request_bytes: int | None = None, require_keys: bool = False,
               allowed_hosts: Sequence[str] = (),
               feedback: FeedbackSettings | None = None,
               file_templates: str | Path | Mapping[str, str] | None = None,
               min_free_bytes: int = health.MIN_FREE_BYTES) -> FastAPI:
    """The ASGI app for a broker (owned by the caller) or a config (owned by the app).

    `require_keys`: API keys always (a public address); else only once a key exists.
    `allowed_hosts`: Host names beyond loopback ones that a key-less server answers, and
    Origins it accepts (`conveyor.forgery`).
    `feedback`: which providers may post bounces and complaints to `/v1/feedback/...`.
    `file_templates`: the delivery workers' file templates (a folder or a mapping), which a
    notification may name besides the stored ones; any other name is a 404.
    `min_free_bytes`: `/readyz` is 503 `storage_full` when an SQLite file's filesystem has
    less free."""
    if isinstance(broker_or_config, Broker):
        broker = broker_or_config
        owned = False
        limit = max_request_bytes or MAX_REQUEST_BYTES
    else:
        allowed_hosts = allowed_hosts or broker_or_config.server.allowed_hosts
        server = broker_or_config.server
        broker = open_broker(broker_or_config.database_url, region=broker_or_config.region,
                             max_in_flight=server.max_in_flight, max_depth=server.max_depth,
                             max_long_polls=server.max_long_polls)
        owned = True
        limit = max_request_bytes or broker_or_config.server.max_request_bytes
        feedback = feedback or feedback_settings(broker_or_config)
        file_templates = file_templates or broker_or_config.server.templates

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            await broker.start()
        try:
            yield
        finally:
            if owned:
                await broker.close()

    app = FastAPI(title="conveyor", version=conveyor.__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None,
                  dependencies=[Depends(single_values)])
    app.state.broker = broker
    app.state.allowed_hosts = normalise_hosts(allowed_hosts)
    app.state.feedback = feedback
    app.state.file_templates = file_templates
    app.state.min_free_bytes = min_free_bytes
    errors.install(app)
    for module in (health, queues, messages, tasks, flow_routes, job_routes, explorer,
                   job_cancel_routes, workers, metrics, stream, wq, dashboard, dashboard_jobs,
                   delivery_pages, deliveries, notify, feedback_routes, recipients, templates):
        app.include_router(module.router)
    docs.install(app)
    _document_raw_bodies(app)
    app.add_middleware(HeadAsGet)  # innermost: every layer outside sees the HEAD it got
    app.add_middleware(NoNul)  # before any route reads the URL
    app.add_middleware(ApiKeyAuth, broker=broker, always=require_keys,  # inside BodyLimit
                       allowed_hosts=app.state.allowed_hosts)
    app.add_middleware(BodyLimit, max_bytes=limit)
    metrics.install(app)  # monitor, /metrics figures, request ids and logs (outermost)
    return app


def feedback_settings(config: Config) -> FeedbackSettings | None:
    """The feedback webhooks a server's configuration enables (None: none)."""
    f = config.feedback
    if not f.enabled:
        return None
    return FeedbackSettings(sendgrid_key=f.sendgrid_key, postmark_secret=f.postmark_secret,
                            sns_topics=f.sns_topics, soft_limit=f.soft_limit)


def _document_raw_bodies(app: FastAPI) -> None:
    """Add the schemas of bodies that routes parse themselves to `/openapi.json`."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_raw_body_schemas(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """The app configured from `CONVEYOR_*` variables (for uvicorn's `--factory`)."""
    return create_app(from_env())
