-- PostgreSQL dialect of the delivery view (migrations/0020_delivery_events.sql and 0025,
-- whose triggers write these tables); the same names exist in ../sqlite/delivery_events.sql.

-- name: delivery_event_list
-- The kept events and the two states the row itself stands for (migration 0025): the one
-- it was made in and its current one, each only once the row has changed since it was
-- made (until then the row is the whole story, as before). Of events with the same
-- (attempt, status) the later one stands: the current state over kept events over the
-- made state.
WITH d AS (
    SELECT made_status, made_at, attempts, status, updated_at, started_at, error,
           provider_id,
           made_status IS NOT DISTINCT FROM status AND attempts = 0 AND made_at = updated_at
           AND error IS NULL AS unchanged
    FROM conveyor_deliveries WHERE id = $1
), v AS (
    SELECT 2 AS rank, attempts AS attempt, status, updated_at AS at, started_at,
           left(error, 500) AS detail,
           CASE WHEN status = 'sent' THEN left(provider_id, 200) END AS provider_id
    FROM d WHERE status <> 'sending' AND NOT unchanged
    UNION ALL
    SELECT 1, attempt, status, at, started_at, detail, provider_id
    FROM conveyor_delivery_events WHERE delivery_id = $1
    UNION ALL
    SELECT 0, 0, made_status, made_at, NULL, NULL, NULL
    FROM d WHERE made_status IS NOT NULL AND NOT unchanged
)
SELECT attempt, status, at, started_at, detail, provider_id
FROM (SELECT DISTINCT ON (attempt, status) * FROM v ORDER BY attempt, status, rank DESC) e
ORDER BY at, attempt;

-- name: delivery_series
SELECT bucket, channel, status, n
FROM conveyor_delivery_series
WHERE bucket >= $1 AND bucket < $2 AND ($3::text IS NULL OR channel = $3)
ORDER BY bucket, channel, status;

-- name: delivery_series_expire
DELETE FROM conveyor_delivery_series
WHERE ctid IN (SELECT ctid FROM conveyor_delivery_series WHERE bucket < $1 LIMIT $2);
