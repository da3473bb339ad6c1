-- What workers share besides messages: rate-limit buckets, concurrency slots, cron ticks
-- and job statuses. Times are integer milliseconds since the epoch, as everywhere.

-- One row per rate-limit key (GCRA). tat is the theoretical arrival time in ms: the
-- bucket is full when tat <= now, so a row with tat and blocked_until in the past says
-- nothing an absent row would not (the sweeper deletes those). REAL because the emission
-- interval (per / rate) is rarely a whole number of ms.
CREATE TABLE conveyor_rate_limits (
    key TEXT PRIMARY KEY,
    tat REAL NOT NULL,
    granted INTEGER NOT NULL,
    blocked_until INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Concurrency slots: count held by one holder for one key until expires_at.
CREATE TABLE conveyor_slots (
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    count INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (key, holder)
) WITHOUT ROWID;
CREATE INDEX conveyor_slots_expiry ON conveyor_slots (expires_at);

-- Cron ticks: a row per claimed (schedule, tick); the primary key makes the claim unique.
CREATE TABLE conveyor_cron_ticks (
    schedule TEXT NOT NULL,
    tick_at INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL,
    PRIMARY KEY (schedule, tick_at)
) WITHOUT ROWID;
CREATE INDEX conveyor_cron_ticks_age ON conveyor_cron_ticks (claimed_at);

-- Job statuses, kept until expires_at (the sweeper deletes them after).
CREATE TABLE conveyor_jobs (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    task TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    result TEXT,
    keep_seconds INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX conveyor_jobs_queue_status ON conveyor_jobs (queue, status);
CREATE INDEX conveyor_jobs_expiry ON conveyor_jobs (expires_at);
