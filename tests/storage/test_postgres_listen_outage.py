"""The LISTEN connection (wake-ups from other processes) through a database that refuses
connections for a few seconds: one WARNING when it cannot reconnect, one INFO line when
it can, instead of a WARNING every second; and every queue is looked at again then."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from conveyor.storage.postgres.postgres_storage import PostgresStorage


@pytest.mark.postgres
@pytest.mark.timeout(60)
async def test_listen_reconnects_through_an_outage_with_two_lines(
        postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    role = f"listener_{uuid.uuid4().hex[:8]}"
    owner = urlsplit(postgres_url).username or "postgres"
    parts = urlsplit(postgres_url)
    url = urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))

    def admin(*statements: str) -> None:
        with psycopg.connect(postgres_url, autocommit=True) as db:
            for statement in statements:
                db.execute(statement)

    await asyncio.to_thread(admin, f'CREATE ROLE "{role}" LOGIN IN ROLE "{owner}"')
    storage = PostgresStorage(url, maintenance=False)
    woken: list[int | None] = []
    try:
        await storage.open()
        await storage.listen(woken.append)
        deadline = time.monotonic() + 10
        while not woken:  # connected (it looks at every queue once it is)
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        # Refused for a while (53300, too many connections for role), then let back in.
        await asyncio.to_thread(
            admin, f'ALTER ROLE "{role}" CONNECTION LIMIT 0',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        await asyncio.sleep(3.5)  # a try a second
        await asyncio.to_thread(admin, f'ALTER ROLE "{role}" CONNECTION LIMIT -1')
        woken.clear()
        deadline = time.monotonic() + 10
        while not woken:
            assert time.monotonic() < deadline, caplog.text
            await asyncio.sleep(0.05)
    finally:
        await storage.close()
        await asyncio.to_thread(
            admin, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   f"WHERE usename = '{role}'", f'DROP ROLE IF EXISTS "{role}"')
    # (asyncpg's pool says each failed try to refill itself, with a traceback: its own)
    ours = [r for r in caplog.records if r.name.startswith("conveyor")]
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "the database is unavailable" in warnings[0]
    assert "too many connections for role" in warnings[0]
    infos = [r.getMessage() for r in ours if "reachable again" in r.getMessage()]
    assert len(infos) == 1, infos
    assert woken == [None]
    assert not [r for r in ours if r.exc_info and r.levelno >= logging.WARNING]
