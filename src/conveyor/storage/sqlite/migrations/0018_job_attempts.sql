-- The job explorer's job page: when a status was first written, the job's key (its task's
-- per-key value, else its unique key) and its call's arguments (bounded, JSON), and one
-- row per attempt: who ran it, from when to when, how it ended, and a failure's error and
-- traceback. Written by the worker's batched status reports (tracked jobs only); an
-- attempt row goes when its job's status expires or is deleted. Additive: older nodes
-- ignore the new columns and table.
ALTER TABLE conveyor_jobs ADD COLUMN created_at INTEGER;
ALTER TABLE conveyor_jobs ADD COLUMN key TEXT;
ALTER TABLE conveyor_jobs ADD COLUMN args TEXT;
-- `GET /v1/jobs?key=` walks one key's statuses newest update first.
CREATE INDEX conveyor_jobs_key_updated ON conveyor_jobs (key, updated_at, id)
    WHERE key IS NOT NULL;

-- An attempt is named by its run number and the worker's start time: a job retried from
-- the dead-letter queue runs attempt 1 again, and the earlier history stays.
CREATE TABLE conveyor_job_attempts (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    worker TEXT,
    ended_at INTEGER,
    outcome TEXT NOT NULL,
    error TEXT,
    traceback TEXT,
    PRIMARY KEY (job_id, attempt, started_at)
) WITHOUT ROWID;
