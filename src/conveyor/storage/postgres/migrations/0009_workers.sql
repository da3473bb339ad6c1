-- Worker heartbeats: one row per live worker process, replaced on each beat and forgotten
-- expires_at after the last (the sweeper deletes expired rows; listings skip them before).
-- `queues` is a JSON array, `detail` a JSON object (schedules, per-task counts): read
-- whole, never queried inside. Small and hot, so room for HOT updates.
CREATE TABLE conveyor_workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    queues text NOT NULL,
    concurrency integer NOT NULL,
    running integer NOT NULL,
    detail text NOT NULL,
    started_at bigint NOT NULL,
    beat_at bigint NOT NULL,
    expires_at bigint NOT NULL
) WITH (fillfactor = 50);
CREATE INDEX conveyor_workers_expiry ON conveyor_workers (expires_at);
