-- PostgreSQL dialect of the recipients table (migrations/0009_recipients.sql); the same
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
