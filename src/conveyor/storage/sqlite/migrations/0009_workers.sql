-- Worker heartbeats: one row per live worker process, replaced on each beat and forgotten
-- expires_at after the last (the sweeper deletes expired rows; listings skip them before).
-- `queues` is a JSON array, `detail` a JSON object (schedules, per-task counts): read
-- whole, never queried inside.
CREATE TABLE conveyor_workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    queues TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    running INTEGER NOT NULL,
    detail TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    beat_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX conveyor_workers_expiry ON conveyor_workers (expires_at);
