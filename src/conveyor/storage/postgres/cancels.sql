-- PostgreSQL dialect of job cancel requests. The same names exist in ../sqlite/cancels.sql.
-- `COALESCE($n::bigint, conveyor_now_ms())` is "now": the database clock unless a test
-- injects one.

-- name: cancel_put
-- A second request of the same job only keeps it longer.
INSERT INTO conveyor_job_cancels AS c (job_id, requested_at, expires_at)
SELECT $1, t.now, t.now + $2::bigint
FROM (SELECT COALESCE($3::bigint, conveyor_now_ms()) AS now) t
ON CONFLICT (job_id) DO UPDATE SET expires_at = greatest(c.expires_at, EXCLUDED.expires_at);

-- name: cancel_find
-- Which of these jobs (a worker's running jobs) are to be cancelled.
SELECT job_id FROM conveyor_job_cancels
WHERE job_id = ANY($1::text[]) AND expires_at > COALESCE($2::bigint, conveyor_now_ms());

-- name: cancel_expire
DELETE FROM conveyor_job_cancels
WHERE job_id IN (SELECT job_id FROM conveyor_job_cancels
                 WHERE expires_at <= COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2);
