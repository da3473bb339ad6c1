"""Migration 0029 on a database written before it: a tick claimed the old way stays final
(never taken over), and a job running across the upgrade (no run recorded on its row)
still takes its own end. Both dialects."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.jobs import CronLease
from conveyor.storage.base import AttemptRow, JobRow, Storage

BEFORE = 28  # the migrations before 0029
RUN = 1_700_000_000_000


async def _after_the_upgrade(storage: Storage) -> None:
    now = RUN + 60_000
    lease = await storage.cron_lease("old", 1, 10_000, 240_000, now)
    assert lease == CronLease(False, False, ())
    end = JobRow("j", "succeeded", "q", "t", 1, None, None, 60, 7, None, None, None)
    await storage.job_put_many([end], now, [AttemptRow(
        "j", 1, RUN, "w", now, "succeeded", None, None)])
    found = await storage.job_get("j", now)
    assert found is not None and found.status == "succeeded"


async def test_an_upgraded_sqlite_file(tmp_path: Path) -> None:
    import sqlite3

    from conveyor.storage.sqlite.sqlite_base import MIGRATIONS, _statements
    from conveyor.storage.sqlite.sqlite_storage import SqliteStorage

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE conveyor_migrations (version INTEGER PRIMARY KEY, "
               "applied_at INTEGER NOT NULL)")
    for version, script in MIGRATIONS[:BEFORE]:
        for statement in _statements(script):
            db.execute(statement)
        db.execute("INSERT INTO conveyor_migrations VALUES (?, 0)", (version,))
    db.execute("INSERT INTO conveyor_cron_ticks VALUES ('old', 1, ?)", (RUN,))
    db.execute("INSERT INTO conveyor_jobs (id, queue, task, status, attempts, keep_seconds, "
               "updated_at, expires_at, progress) VALUES ('j', 'q', 't', 'running', 1, 60, "
               "?, ?, 5)", (RUN, RUN + 86_400_000))
    db.execute("INSERT INTO conveyor_job_attempts (job_id, attempt, started_at, worker, "
               "outcome) VALUES ('j', 1, ?, 'w', 'running')", (RUN,))
    db.close()
    storage = SqliteStorage(str(path))
    await storage.open()
    try:
        await _after_the_upgrade(storage)
    finally:
        await storage.close()


@pytest.mark.postgres
async def test_an_upgraded_postgres_database(postgres_url: str) -> None:
    import asyncpg

    from conveyor.storage.postgres.postgres_base import MIGRATIONS
    from conveyor.storage.postgres.postgres_storage import PostgresStorage

    conn = await asyncpg.connect(postgres_url)
    try:  # the test databases are cloned from a migrated template: start from empty
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await conn.execute("CREATE TABLE conveyor_migrations (version integer PRIMARY KEY, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")
        for version, script in MIGRATIONS[:BEFORE]:
            await conn.execute(script)
            await conn.execute("INSERT INTO conveyor_migrations (version) VALUES ($1)",
                               version)
        await conn.execute("INSERT INTO conveyor_cron_ticks VALUES ('old', 1, $1)", RUN)
        await conn.execute(
            "INSERT INTO conveyor_jobs (id, queue, task, status, attempts, keep_seconds, "
            "updated_at, expires_at, progress) VALUES ('j', 'q', 't', 'running', 1, 60, $1, "
            "$2, 5)", RUN, RUN + 86_400_000)
        await conn.execute(
            "INSERT INTO conveyor_job_attempts (job_id, attempt, started_at, worker, outcome) "
            "VALUES ('j', 1, $1, 'w', 'running')", RUN)
    finally:
        await conn.close()
    storage = PostgresStorage(postgres_url)
    await storage.open()
    try:
        await _after_the_upgrade(storage)
    finally:
        await storage.close()
