"""`/readyz` is 503 `storage_full` when the SQLite file's filesystem has less free space
than the server's floor: the real filesystem, with the floor set above what it has (and
below, for the ready answer). PostgreSQL watches its own disk: ready either way."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from conveyor.broker.broker import Broker
from conveyor.http.app import create_app
from tests.http.helpers import assert_error


def _free(path: str) -> int:
    stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    return stat.f_bavail * stat.f_frsize


async def _readyz(broker: Broker, floor: int) -> httpx.Response:
    app = create_app(broker, min_free_bytes=floor)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as http:
        return await http.get("/readyz")


async def test_a_full_disk_is_not_ready(broker: Broker, backend: str,
                                        tmp_path: Path) -> None:
    path = getattr(broker.storage, "path", str(tmp_path))
    room = _free(path)
    ready = await _readyz(broker, room // 2)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    full = await _readyz(broker, room + 2**40)
    if backend == "postgres":
        assert full.status_code == 200  # the server refuses writes itself
        return
    error = assert_error(full, 503, "storage_full")
    assert "MiB free" in error["message"] and error["message"].endswith(".")

