-- Which notifications were made for which recipient (issue 14: GET /v1/notifications?
-- recipient=...). A table beside the ledger rather than a column in it, so that the hot
-- delivery rows and their statements stay as they are; a link expires with its delivery.
CREATE TABLE conveyor_recipient_deliveries (
    recipient_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    delivery_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (recipient_id, created_at, delivery_id)
) WITHOUT ROWID;
CREATE INDEX conveyor_recipient_deliveries_expiry ON conveyor_recipient_deliveries (expires_at);
