-- SQLite dialect of the delivery view (migrations/0020_delivery_events.sql and 0025, whose
-- triggers write these tables); the same names exist in ../postgres/delivery_events.sql.

-- name: delivery_event_list
-- The kept events (through the ledger row's seq, their key) and the two states the row
-- itself stands for (migration 0025): the one it was made in and its current one, each
-- only once the row has changed since it was made (until then the row is the whole
-- story, as before). Of events with the same (attempt, status) the later one stands: the
-- current state over kept events over the made state.
WITH d AS (
    SELECT seq, made_status, made_at, attempts, status, updated_at, started_at, error,
           provider_id,
           made_status IS status AND attempts = 0 AND made_at = updated_at
           AND error IS NULL AS unchanged
    FROM conveyor_deliveries WHERE id = :id
), v AS (
    SELECT 2 AS rank, attempts AS attempt, status, updated_at AS at, started_at,
           substr(error, 1, 500) AS detail,
           CASE WHEN status = 'sent' THEN substr(provider_id, 1, 200) END AS provider_id
    FROM d WHERE status <> 'sending' AND NOT unchanged
    UNION ALL
    SELECT 1, e.attempt, e.status, e.at, e.started_at, e.detail, e.provider_id
    FROM d JOIN conveyor_delivery_events e ON e.delivery_seq = d.seq
    UNION ALL
    SELECT 0, 0, made_status, made_at, NULL, NULL, NULL
    FROM d WHERE made_status IS NOT NULL AND NOT unchanged
)
SELECT attempt, status, at, started_at, detail, provider_id
FROM v
WHERE NOT EXISTS (SELECT 1 FROM v AS w
                  WHERE w.attempt = v.attempt AND w.status = v.status AND w.rank > v.rank)
ORDER BY at, attempt;

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
