-- Times are bigint milliseconds since the epoch, as on SQLite; "now" is the database's
-- clock unless a test passes one in.
CREATE FUNCTION conveyor_now_ms() RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;

CREATE TABLE conveyor_queues (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- never reused
    region text NOT NULL,
    name text NOT NULL,
    attributes text NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    UNIQUE (region, name)
);

-- The hot table: a row lives from send to delete, so it stays small. No foreign key:
-- its per-row trigger would cost more than the batch insert itself.
CREATE TABLE conveyor_messages (
    id uuid PRIMARY KEY,              -- UUIDv7: time-ordered, so it is the retention index
    queue_id bigint NOT NULL,
    priority smallint NOT NULL DEFAULT 0,
    visible_at bigint NOT NULL,       -- send time + delay, then the lease expiry
    leased boolean NOT NULL DEFAULT false,
    token bigint NOT NULL DEFAULT 0,  -- changes on every receive: stale handles miss
    receive_count integer NOT NULL DEFAULT 0,
    sent_at bigint NOT NULL,
    first_received_at bigint,
    body_kind smallint NOT NULL,
    body text NOT NULL,
    attributes text,
    group_id text,
    dedup_id text,
    source_queue_id bigint,           -- set while dead-lettered: where redrive returns it
    last_error text,
    sequence bigint                   -- FIFO queues only: order within a message group
) WITH (
    -- The table churns completely: vacuum and analyse it early and often.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.01,
    autovacuum_vacuum_cost_delay = 0
);

-- The claim reads this index in order and stops after `limit` visible rows.
CREATE INDEX conveyor_messages_claim
    ON conveyor_messages (queue_id, priority DESC, visible_at, id);
CREATE INDEX conveyor_messages_source ON conveyor_messages (source_queue_id)
    WHERE source_queue_id IS NOT NULL;
CREATE INDEX conveyor_messages_fifo ON conveyor_messages (queue_id, sequence)
    WHERE sequence IS NOT NULL;
CREATE SEQUENCE conveyor_fifo_sequence;

CREATE TABLE conveyor_dedup (
    queue_id bigint NOT NULL,
    dedup_id text NOT NULL,
    message_id uuid NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (queue_id, dedup_id)
);
CREATE INDEX conveyor_dedup_expiry ON conveyor_dedup (expires_at);

CREATE TABLE conveyor_move_tasks (
    id text PRIMARY KEY,
    source_queue_id bigint NOT NULL,
    status text NOT NULL,
    data text NOT NULL,
    started_at bigint NOT NULL
);
CREATE INDEX conveyor_move_tasks_source ON conveyor_move_tasks (source_queue_id, started_at);

-- Fire-and-forget queues (durability 'unlogged') keep their messages here: no WAL, so
-- much cheaper writes, but emptied by a crash of the server. Same shape as the logged table.
CREATE UNLOGGED TABLE conveyor_messages_unlogged (LIKE conveyor_messages INCLUDING ALL);
