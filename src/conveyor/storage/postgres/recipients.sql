-- PostgreSQL dialect of the recipients table (migrations/0010_recipients.sql); the same
-- names exist in ../sqlite/recipients.sql. Batches travel as arrays (unnest), one statement
-- each. A null "now" means the database clock.

-- name: recipient_put_many
-- The caller sends each id once per batch (ON CONFLICT cannot touch a row twice).
INSERT INTO conveyor_recipients AS r (id, timezone, locale, addresses, preferences,
                                      quiet_hours, updated_at)
SELECT b.id, b.timezone, b.locale, b.addresses, b.preferences, b.quiet_hours, t.now
FROM (SELECT COALESCE($7::bigint, conveyor_now_ms()) AS now) t,
     unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
         AS b(id, timezone, locale, addresses, preferences, quiet_hours)
ON CONFLICT (id) DO UPDATE SET
    timezone = EXCLUDED.timezone, locale = EXCLUDED.locale, addresses = EXCLUDED.addresses,
    preferences = EXCLUDED.preferences, quiet_hours = EXCLUDED.quiet_hours,
    updated_at = EXCLUDED.updated_at;

-- name: recipient_get
SELECT id, timezone, locale, addresses, preferences, quiet_hours, updated_at
FROM conveyor_recipients WHERE id = $1;

-- name: recipient_delete
DELETE FROM conveyor_recipients WHERE id = $1;

-- name: recipient_count
SELECT count(*) FROM conveyor_recipients;

-- name: recipient_page
-- Keyset paging by the primary key: each page is one range scan, however deep (the
-- order is the database's collation: consistent with `>`, so no row is missed or repeated).
SELECT id, timezone, locale, addresses, preferences, quiet_hours, updated_at
FROM conveyor_recipients
WHERE $1::text IS NULL OR id > $1::text
ORDER BY id
LIMIT $2;

-- name: recipient_delivery_add_many
-- A link already made (a repeated request) is kept.
INSERT INTO conveyor_recipient_deliveries (recipient_id, created_at, delivery_id, expires_at)
SELECT b.recipient_id, t.now, b.delivery_id, t.now + $3::bigint
FROM (SELECT COALESCE($4::bigint, conveyor_now_ms()) AS now) t,
     unnest($1::text[], $2::text[]) AS b(recipient_id, delivery_id)
WHERE NOT EXISTS (SELECT 1 FROM conveyor_recipient_deliveries l
                  WHERE l.recipient_id = b.recipient_id AND l.delivery_id = b.delivery_id);

-- name: recipient_delivery_list
-- Newest first; links whose delivery row expired (or was never written) drop out.
SELECT d.id, d.channel, d.recipient, d.status, d.attempts, d.error, d.provider_id,
       d.updated_at, d.expires_at, d.resends
FROM conveyor_recipient_deliveries l
JOIN conveyor_deliveries d ON d.id = l.delivery_id
WHERE l.recipient_id = $1 AND d.expires_at > COALESCE($3::bigint, conveyor_now_ms())
ORDER BY l.created_at DESC, l.delivery_id
LIMIT $2;

-- name: recipient_delivery_expire
DELETE FROM conveyor_recipient_deliveries
WHERE ctid IN (SELECT ctid FROM conveyor_recipient_deliveries
               WHERE expires_at <= COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2);
