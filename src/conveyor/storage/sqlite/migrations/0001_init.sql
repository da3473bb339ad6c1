-- Queues: AUTOINCREMENT so that an id is never reused after a queue is deleted (a node
-- with a stale cache must not send into a newer queue of another name).
CREATE TABLE conveyor_queues (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    attributes TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (region, name)
);

-- The hot table: a row lives from send to delete. visible_at is the one clock column:
-- the send time plus delay, then the lease expiry while leased.
CREATE TABLE conveyor_messages (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,          -- UUIDv7: time-ordered, so it is the retention index
    queue_id INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    visible_at INTEGER NOT NULL,
    leased INTEGER NOT NULL DEFAULT 0,
    token INTEGER NOT NULL DEFAULT 0, -- changes on every receive: stale handles miss
    receive_count INTEGER NOT NULL DEFAULT 0,
    sent_at INTEGER NOT NULL,
    first_received_at INTEGER,
    body_kind INTEGER NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT,
    group_id TEXT,
    dedup_id TEXT,
    source_queue_id INTEGER,          -- set while dead-lettered: where redrive returns it
    last_error TEXT,
    sequence INTEGER                  -- FIFO queues only: order within a message group
);

-- The claim walks this index in order and stops after `limit` visible rows.
CREATE INDEX conveyor_messages_claim ON conveyor_messages (queue_id, priority DESC, visible_at);
CREATE INDEX conveyor_messages_source ON conveyor_messages (source_queue_id)
    WHERE source_queue_id IS NOT NULL;
CREATE INDEX conveyor_messages_fifo ON conveyor_messages (queue_id, sequence)
    WHERE sequence IS NOT NULL;

-- Counters that only grow (FIFO sequence numbers).
CREATE TABLE conveyor_counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE TABLE conveyor_dedup (
    queue_id INTEGER NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue_id, dedup_id)
) WITHOUT ROWID;
CREATE INDEX conveyor_dedup_expiry ON conveyor_dedup (expires_at);

CREATE TABLE conveyor_move_tasks (
    id TEXT PRIMARY KEY,
    source_queue_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    started_at INTEGER NOT NULL
);
CREATE INDEX conveyor_move_tasks_source ON conveyor_move_tasks (source_queue_id, started_at);

-- Bumped when messages become visible, so other processes sharing the file can tell
-- which queue to wake (they watch PRAGMA data_version, then read this small table).
CREATE TABLE conveyor_signals (
    queue_id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL
);
