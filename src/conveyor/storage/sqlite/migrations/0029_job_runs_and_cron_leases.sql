-- Tracked jobs and cron ticks survive a kill at the wrong moment (PostgreSQL's 0029 says
-- why). SQLite's receive dead-letters in a statement of its own, inside its transaction,
-- so it records a tracked job's dead there (sqlite_storage.py) and needs no claim change.
-- A cron tick's claim is a lease while `pending` (rows of older nodes are not: final).
ALTER TABLE conveyor_cron_ticks ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX conveyor_cron_ticks_pending ON conveyor_cron_ticks (schedule, claimed_at)
    WHERE pending;
-- The start of the run a job's status reports (NULL: none); see jobs.sql's job_put_many.
ALTER TABLE conveyor_jobs ADD COLUMN run_started INTEGER;
