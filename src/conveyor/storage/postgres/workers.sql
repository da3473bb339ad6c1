-- PostgreSQL dialect of worker heartbeats. The same names exist in ../sqlite/workers.sql.
-- `COALESCE($n::bigint, conveyor_now_ms())` is "now": the database clock unless a test
-- injects one, so workers with skewed clocks still expire on one clock.

-- name: worker_put
-- One upsert per beat. started_at stays the first beat's, unless the stored row had
-- expired (the sweeper had not got to it yet): then the worker starts over.
INSERT INTO conveyor_workers AS w (id, host, pid, queues, concurrency, running, detail,
                                   started_at, beat_at, expires_at)
SELECT $1, $2, $3, $4, $5, $6, $7, t.now, t.now, t.now + $8::bigint
FROM (SELECT COALESCE($9::bigint, conveyor_now_ms()) AS now) t
ON CONFLICT (id) DO UPDATE SET
    host = EXCLUDED.host, pid = EXCLUDED.pid, queues = EXCLUDED.queues,
    concurrency = EXCLUDED.concurrency, running = EXCLUDED.running, detail = EXCLUDED.detail,
    started_at = CASE WHEN w.expires_at <= EXCLUDED.beat_at THEN EXCLUDED.beat_at
                      ELSE w.started_at END,
    beat_at = EXCLUDED.beat_at, expires_at = EXCLUDED.expires_at;

-- name: worker_list
SELECT id, host, pid, queues, concurrency, running, detail, started_at, beat_at, expires_at
FROM conveyor_workers
WHERE expires_at > COALESCE($1::bigint, conveyor_now_ms())
ORDER BY started_at, id;

-- name: worker_delete
DELETE FROM conveyor_workers WHERE id = $1;

-- name: worker_expire
-- Checked again on the latest row version, so a beat committed meanwhile is kept.
DELETE FROM conveyor_workers
WHERE id IN (SELECT id FROM conveyor_workers
             WHERE expires_at <= COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2)
  AND expires_at <= COALESCE($1::bigint, conveyor_now_ms());
