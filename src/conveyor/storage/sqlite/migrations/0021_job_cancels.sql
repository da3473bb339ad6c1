-- Cancel requests of jobs (broker.jobs.cancel): a running job's worker finds its id here
-- on its next cancel check (conveyor.worker.cancels). Kept until expires_at, then swept.
-- Additive: older nodes ignore it.
CREATE TABLE conveyor_job_cancels (
    job_id TEXT PRIMARY KEY,
    requested_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX conveyor_job_cancels_expiry ON conveyor_job_cancels (expires_at);
