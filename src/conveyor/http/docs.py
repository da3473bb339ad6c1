"""Swagger UI at `/api-docs`, from assets installed with the package (it works offline).

The assets come from `fastapi-offline`, which ships Swagger UI 5: FastAPI documents the API
as OpenAPI 3.1, which Swagger UI 4 (the `swagger-ui-bundle` package) refuses to render.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/api-docs"
ASSETS_PATH = "/api-docs/assets"


def swagger_assets() -> Path:
    """The directory holding swagger-ui-bundle.js and swagger-ui.css."""
    return Path(str(importlib.resources.files("fastapi_offline") / "static"))


def install(app: FastAPI) -> None:
    """Serve the Swagger UI page and its static assets."""
    app.mount(ASSETS_PATH, StaticFiles(directory=swagger_assets()), name="api-docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def api_docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title="conveyor API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        )
