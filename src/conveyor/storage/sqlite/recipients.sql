-- SQLite dialect of the recipients table (migrations/0010_recipients.sql); the same names
-- exist in ../postgres/recipients.sql. "now" always comes from Python.

-- name: recipient_put_many
-- Run once per row (executemany) in one transaction: a whole import batch commits or not.
INSERT INTO conveyor_recipients (id, timezone, locale, addresses, preferences, quiet_hours,
                                 updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    timezone = excluded.timezone, locale = excluded.locale, addresses = excluded.addresses,
    preferences = excluded.preferences, quiet_hours = excluded.quiet_hours,
    updated_at = excluded.updated_at;

-- name: recipient_get
SELECT id, timezone, locale, addresses, preferences, quiet_hours, updated_at
FROM conveyor_recipients WHERE id = :id;

-- name: recipient_delete
DELETE FROM conveyor_recipients WHERE id = :id;

-- name: recipient_count
SELECT count(*) FROM conveyor_recipients;

-- name: recipient_page
-- Keyset paging by the primary key: each page is one range scan, however deep.
SELECT id, timezone, locale, addresses, preferences, quiet_hours, updated_at
FROM conveyor_recipients
WHERE :after IS NULL OR id > :after
ORDER BY id
LIMIT :limit;

-- name: recipient_delivery_add_many
-- Run once per row (executemany); a link already made (a repeated request) is kept.
INSERT INTO conveyor_recipient_deliveries (recipient_id, created_at, delivery_id, expires_at)
SELECT :recipient_id, :now, :delivery_id, :expires_at
WHERE NOT EXISTS (SELECT 1 FROM conveyor_recipient_deliveries
                  WHERE recipient_id = :recipient_id AND delivery_id = :delivery_id);

-- name: recipient_delivery_list
-- Newest first; links whose delivery row expired (or was never written) drop out.
SELECT d.id, d.channel, d.recipient, d.status, d.attempts, d.error, d.provider_id,
       d.updated_at, d.expires_at, d.resends
FROM conveyor_recipient_deliveries l
JOIN conveyor_deliveries d ON d.id = l.delivery_id
WHERE l.recipient_id = :recipient_id AND d.expires_at > :now
ORDER BY l.created_at DESC, l.delivery_id
LIMIT :limit;

-- name: recipient_delivery_expire
DELETE FROM conveyor_recipient_deliveries
WHERE (recipient_id, created_at, delivery_id) IN (
    SELECT recipient_id, created_at, delivery_id FROM conveyor_recipient_deliveries
    WHERE expires_at <= :now LIMIT :limit);
