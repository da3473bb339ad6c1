"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from conveyor.broker.broker import Broker
from conveyor.errors import ConveyorError
from conveyor.http.deps import BrokerDep
from conveyor.http.errors import error_response
from conveyor.http.schemas import ErrorOut, Health, Ready
from conveyor.http.wire import json_response

router = APIRouter(tags=["health"])

READY_TIMEOUT_SECONDS = 5.0
MIN_FREE_BYTES = 32 * 1024 * 1024
"""Below this much free space on the SQLite file's filesystem the store is not ready: a
write, a WAL checkpoint or a migration may fail (`create_app(min_free_bytes=...)`)."""


@router.get("/healthz", response_model=Health)
async def healthz() -> Response:
    """The process is up (the database is not consulted)."""
    return json_response({"status": "ok"})


@router.get("/readyz", response_model=Ready,
            responses={503: {"model": ErrorOut,
                             "description": "Storage unreachable, its SQLite file "
                                            "deleted, read-only or full, or (with the Ready "
                                            "shape) schema not current or file handles "
                                            "short."}})
async def readyz(request: Request, broker: BrokerDep) -> Response:
    """Storage answers and its schema is at the version this code knows, the process has
    file handles to spare for new connections (`reason` says what is short), and an SQLite
    file takes writes: still the file at its path (503 `storage_file_gone` once deleted or
    replaced), writable (503 `storage_read_only`), its filesystem with room (503
    `storage_full` below `MIN_FREE_BYTES`)."""
    guard = getattr(request.app.state, "file_guard", None)  # set by `conveyor serve`
    reason = guard.reason() if guard is not None else None
    if reason is not None:
        return json_response({"status": "not_ready", "reason": reason,
                              "schema_version": None, "known_version": None}, 503)
    try:
        if (problem := await asyncio.wait_for(_file_problem(broker),
                                              READY_TIMEOUT_SECONDS)) is not None:
            return error_response(503, *problem)
        applied, known = await asyncio.wait_for(broker.storage.schema_version(),
                                                READY_TIMEOUT_SECONDS)
    except ConveyorError as exc:
        return error_response(503, exc.code, exc.message)
    except TimeoutError:
        return error_response(503, "storage_unavailable", "The database did not answer.")
    except Exception as exc:  # a probe reports, it does not fail
        return error_response(503, "storage_unavailable", f"The database failed: {exc}")
    if (full := _disk_full(broker, getattr(request.app.state, "min_free_bytes",
                                           MIN_FREE_BYTES))) is not None:
        return error_response(503, "storage_full", full)
    ready = applied == known
    return json_response({"status": "ready" if ready else "not_ready",
                          "schema_version": applied, "known_version": known},
                         200 if ready else 503)


async def _file_problem(broker: Broker) -> tuple[str, str] | None:
    """(code, sentence) when an SQLite file was deleted or replaced while open, or refuses
    writes; None otherwise and on PostgreSQL."""
    # Duck-typed like `path` below: http may not import the driver (import-linter).
    probe = getattr(broker.storage, "file_problem", None)
    if probe is None:
        return None
    problem: tuple[str, str] | None = await probe()
    return problem


def _disk_full(broker: Broker, floor: int) -> str | None:
    """Why the SQLite file's filesystem cannot take writes (free space under `floor`), or
    None. PostgreSQL's disk is its server's to watch (it refuses writes itself)."""
    # SQLite storage names its file; http may not import the driver (import-linter).
    path = getattr(broker.storage, "path", None)
    if not isinstance(path, str) or path == ":memory:":
        return None
    try:
        stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return None  # the file's directory is gone: the schema check above says so
    free = stat.f_bavail * stat.f_frsize
    if free >= floor:
        return None
    return (f"The database's filesystem has {free / 2**20:.1f} MiB free, under the "
            f"{floor / 2**20:.1f} MiB this server needs to take writes.")
