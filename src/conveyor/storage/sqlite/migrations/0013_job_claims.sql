-- Unique and debounced jobs: a key held by one message until it expires (see
-- conveyor/storage/claims.py). Written in the send's own transaction, so two processes
-- sending the same key at once store one message. Additive: older nodes ignore it.
CREATE TABLE conveyor_claims (
    key TEXT PRIMARY KEY,
    message_id BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX conveyor_claims_expiry ON conveyor_claims (expires_at);
