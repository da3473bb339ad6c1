-- The delivery ledger: one row per notification (by delivery id), written `queued` when it
-- is enqueued, `sending` just before the provider call and its outcome just after, so a
-- redelivered queue message never sends a `sent` notification again. Rows expire at
-- expires_at (set once, when the row is made) and the sweeper deletes them. Fillfactor
-- below 100 so the two status updates of a row stay HOT updates on the same page.
CREATE TABLE conveyor_deliveries (
    id text PRIMARY KEY,
    channel text NOT NULL,
    recipient text NOT NULL,
    status text NOT NULL,
    attempts integer NOT NULL,
    error text,
    provider_id text,
    updated_at bigint NOT NULL,
    expires_at bigint NOT NULL
) WITH (fillfactor = 70);
CREATE INDEX conveyor_deliveries_expiry ON conveyor_deliveries (expires_at);

-- Addresses and push endpoints a channel skips from now on (hard bounces, unsubscribes,
-- gone subscriptions).
CREATE TABLE conveyor_suppressions (
    channel text NOT NULL,
    address text NOT NULL,
    reason text NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (channel, address)
);
