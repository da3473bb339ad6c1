"""The native JSON API over HTTP (FastAPI), with OpenAPI at `/openapi.json` and `/api-docs`."""

from conveyor.http.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
