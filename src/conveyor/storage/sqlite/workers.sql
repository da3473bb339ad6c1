-- SQLite dialect of worker heartbeats. The same names exist in ../postgres/workers.sql.
-- Parameters are named; "now" comes from Python (one machine shares the file, one clock).

-- name: worker_put
-- One upsert per beat. started_at stays the first beat's, unless the stored row had
-- expired (the sweeper had not got to it yet): then the worker starts over.
INSERT INTO conveyor_workers (id, host, pid, queues, concurrency, running, detail,
                              started_at, beat_at, expires_at)
VALUES (:id, :host, :pid, :queues, :concurrency, :running, :detail, :now, :now,
        :expires_at)
ON CONFLICT (id) DO UPDATE SET
    host = excluded.host, pid = excluded.pid, queues = excluded.queues,
    concurrency = excluded.concurrency, running = excluded.running, detail = excluded.detail,
    started_at = CASE WHEN conveyor_workers.expires_at <= excluded.beat_at
                      THEN excluded.beat_at ELSE conveyor_workers.started_at END,
    beat_at = excluded.beat_at, expires_at = excluded.expires_at;

-- name: worker_list
SELECT id, host, pid, queues, concurrency, running, detail, started_at, beat_at, expires_at
FROM conveyor_workers
WHERE expires_at > :now
ORDER BY started_at, id;

-- name: worker_delete
DELETE FROM conveyor_workers WHERE id = :id;

-- name: worker_expire
DELETE FROM conveyor_workers
WHERE id IN (SELECT id FROM conveyor_workers WHERE expires_at <= :now LIMIT :limit);
