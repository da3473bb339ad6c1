-- The delivery ledger: one row per notification (by delivery id), written `queued` when it
-- is enqueued, `sending` just before the provider call and its outcome just after, so a
-- redelivered queue message never sends a `sent` notification again. Rows expire at
-- expires_at (set once, when the row is made) and the sweeper deletes them.
CREATE TABLE conveyor_deliveries (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    provider_id TEXT,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX conveyor_deliveries_expiry ON conveyor_deliveries (expires_at);

-- Addresses and push endpoints a channel skips from now on (hard bounces, unsubscribes,
-- gone subscriptions).
CREATE TABLE conveyor_suppressions (
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel, address)
) WITHOUT ROWID;
