-- SQLite dialect of job cancel requests. The same names exist in ../postgres/cancels.sql.
-- Parameters are named; "now" comes from Python (one machine shares the file, one clock).

-- name: cancel_put
-- A second request of the same job only keeps it longer.
INSERT INTO conveyor_job_cancels (job_id, requested_at, expires_at)
VALUES (:job_id, :now, :expires_at)
ON CONFLICT (job_id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at);

-- name: cancel_find
-- Which of these jobs (a JSON array of ids: a worker's running jobs) are to be cancelled.
SELECT job_id FROM conveyor_job_cancels
WHERE job_id IN (SELECT value FROM json_each(:ids)) AND expires_at > :now;

-- name: cancel_expire
DELETE FROM conveyor_job_cancels
WHERE job_id IN (SELECT job_id FROM conveyor_job_cancels WHERE expires_at <= :now
                 LIMIT :limit);
