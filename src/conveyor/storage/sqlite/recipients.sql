-- SQLite dialect of the recipients table (migrations/0009_recipients.sql); the same names
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
