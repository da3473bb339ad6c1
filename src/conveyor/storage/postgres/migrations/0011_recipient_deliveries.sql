-- Which notifications were made for which recipient (issue 14: GET /v1/notifications?
-- recipient=...). A table beside the ledger rather than a column in it, so that the hot
-- delivery rows and their statements stay as they are; a link expires with its delivery.
CREATE TABLE conveyor_recipient_deliveries (
    recipient_id text NOT NULL,
    created_at bigint NOT NULL,
    delivery_id text NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (recipient_id, created_at, delivery_id)
);
CREATE INDEX conveyor_recipient_deliveries_expiry ON conveyor_recipient_deliveries (expires_at);
