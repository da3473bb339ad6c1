-- SQLite dialect of the delivery view (migrations/0020_delivery_events.sql, whose triggers
-- write these tables); the same names exist in ../postgres/delivery_events.sql.

-- name: delivery_event_list
-- Through the ledger row's seq, the key the events are stored under.
SELECT e.attempt, e.status, e.at, e.started_at, e.detail, e.provider_id
FROM conveyor_deliveries d
JOIN conveyor_delivery_events e ON e.delivery_seq = d.seq
WHERE d.id = :id
ORDER BY e.at, e.attempt;

-- name: delivery_series
SELECT bucket, channel, status, n
FROM conveyor_delivery_series
WHERE bucket >= :since AND bucket < :until AND (:channel IS NULL OR channel = :channel)
ORDER BY bucket, channel, status;

-- name: delivery_series_expire
DELETE FROM conveyor_delivery_series
WHERE (bucket, channel, status) IN (
    SELECT bucket, channel, status FROM conveyor_delivery_series
    WHERE bucket < :before LIMIT :limit);
