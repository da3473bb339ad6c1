"""The native JSON API over HTTP (FastAPI), with OpenAPI at `/openapi.json` and `/api-docs`.

`create_app` and `app_from_env` load on first use, so a module that needs only the wire
forms (`conveyor.http.wire`, used by the CLI to print what the server sends) does not import
FastAPI and every route.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app_from_env", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from conveyor.http import app

        return getattr(app, name)
    raise AttributeError(f"module 'conveyor.http' has no attribute {name!r}")
