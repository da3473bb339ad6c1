-- Cancel requests of jobs (broker.jobs.cancel): a running job's worker finds its id here
-- on its next cancel check (conveyor.worker.cancels). Kept until expires_at, then swept.
-- Additive: older nodes ignore it.
CREATE TABLE conveyor_job_cancels (
    job_id text PRIMARY KEY,
    requested_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX conveyor_job_cancels_expiry ON conveyor_job_cancels (expires_at);
