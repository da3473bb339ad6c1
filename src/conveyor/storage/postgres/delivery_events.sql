-- PostgreSQL dialect of the delivery view (migrations/0020_delivery_events.sql, whose
-- triggers write these tables); the same names exist in ../sqlite/delivery_events.sql.

-- name: delivery_event_list
SELECT attempt, status, at, started_at, detail, provider_id
FROM conveyor_delivery_events
WHERE delivery_id = $1
ORDER BY at, attempt;

-- name: delivery_series
SELECT bucket, channel, status, n
FROM conveyor_delivery_series
WHERE bucket >= $1 AND bucket < $2 AND ($3::text IS NULL OR channel = $3)
ORDER BY bucket, channel, status;

-- name: delivery_series_expire
DELETE FROM conveyor_delivery_series
WHERE ctid IN (SELECT ctid FROM conveyor_delivery_series WHERE bucket < $1 LIMIT $2);
