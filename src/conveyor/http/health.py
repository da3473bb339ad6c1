"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from conveyor.errors import ConveyorError
from conveyor.http.deps import BrokerDep
from conveyor.http.errors import error_response
from conveyor.http.schemas import ErrorOut, Health, Ready
from conveyor.http.wire import json_response

router = APIRouter(tags=["health"])

READY_TIMEOUT_SECONDS = 5.0


@router.get("/healthz", response_model=Health)
async def healthz() -> Response:
    """The process is up (the database is not consulted)."""
    return json_response({"status": "ok"})


@router.get("/readyz", response_model=Ready,
            responses={503: {"model": ErrorOut,
                             "description": "Storage unreachable, or (with the Ready "
                                            "shape) schema not current or file handles "
                                            "short."}})
async def readyz(request: Request, broker: BrokerDep) -> Response:
    """Storage answers and its schema is at the version this code knows, and the process
    has file handles to spare for new connections (`reason` says what is short)."""
    guard = getattr(request.app.state, "file_guard", None)  # set by `conveyor serve`
    reason = guard.reason() if guard is not None else None
    if reason is not None:
        return json_response({"status": "not_ready", "reason": reason,
                              "schema_version": None, "known_version": None}, 503)
    try:
        applied, known = await asyncio.wait_for(broker.storage.schema_version(),
                                                READY_TIMEOUT_SECONDS)
    except ConveyorError as exc:
        return error_response(503, exc.code, exc.message)
    except TimeoutError:
        return error_response(503, "storage_unavailable", "The database did not answer.")
    except Exception as exc:  # a probe reports, it does not fail
        return error_response(503, "storage_unavailable", f"The database failed: {exc}")
    ready = applied == known
    return json_response({"status": "ready" if ready else "not_ready",
                          "schema_version": applied, "known_version": known},
                         200 if ready else 503)
