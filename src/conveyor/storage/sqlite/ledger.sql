-- SQLite dialect of the delivery ledger and suppression list; the same names exist in
-- ../postgres/ledger.sql. "now" always comes from Python. Batches of ids travel as one
-- JSON array (json_each) rather than as a parameter per id.

-- name: delivery_put_many
-- Run once per row (executemany), after delivery_statuses. Parameters: id, channel,
-- recipient, status, now, expires_at. The made state is kept for the delivery view.
INSERT INTO conveyor_deliveries (id, channel, recipient, status, attempts, updated_at,
                                 expires_at, made_status, made_at)
VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?4, ?5)
ON CONFLICT (id) DO NOTHING;

-- name: delivery_statuses
-- Read only: the statuses of a batch of ids, for a delivery worker's first look at a batch;
-- also read in the same BEGIN IMMEDIATE transaction before a put or begin (PostgreSQL has
-- no such second statement there: a data-modifying CTE returns them from the one
-- statement that writes, so concurrent begins cannot interleave).
SELECT id, status FROM conveyor_deliveries WHERE id IN (SELECT value FROM json_each(?));

-- name: delivery_begin_many
-- Run once per row. Final rows (sent, failed, unknown) are left alone: that is the whole
-- point. A row still `sending` was handed to a provider by an attempt that never recorded
-- its outcome (the worker died): this attempt is a resend after a crash, counted.
INSERT INTO conveyor_deliveries (id, channel, recipient, status, attempts, updated_at,
                                 expires_at)
VALUES (?, ?, ?, 'sending', 1, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    status = 'sending', attempts = attempts + 1, updated_at = excluded.updated_at,
    resends = resends + (status = 'sending')
WHERE status NOT IN ('sent', 'failed', 'unknown');

-- name: delivery_finish_many
-- Parameters: status, error, provider id, now, id. started_at: when the attempt whose
-- outcome this is was handed over (kept when the outcome is recorded again unchanged).
UPDATE conveyor_deliveries
SET status = ?1, error = ?2, provider_id = coalesce(?3, provider_id), updated_at = ?4,
    started_at = CASE WHEN status = 'sending' THEN updated_at
                      WHEN status = ?1 AND error IS ?2 THEN started_at END
WHERE id = ?5;

-- name: delivery_get
SELECT id, channel, recipient, status, attempts, error, provider_id, updated_at, expires_at,
       resends
FROM conveyor_deliveries
WHERE id = :id AND expires_at > :now;

-- name: delivery_counts
SELECT channel, status, count(*)
FROM conveyor_deliveries
WHERE (:channel IS NULL OR channel = :channel) AND expires_at > :now
GROUP BY channel, status;

-- name: delivery_resent_counts
SELECT channel, count(*)
FROM conveyor_deliveries
WHERE resends > 0 AND (:channel IS NULL OR channel = :channel) AND expires_at > :now
GROUP BY channel;

-- name: delivery_expire
DELETE FROM conveyor_deliveries
WHERE id IN (SELECT id FROM conveyor_deliveries WHERE expires_at <= :now LIMIT :limit);

-- name: suppression_add_many
INSERT INTO conveyor_suppressions (channel, address, reason, created_at)
VALUES (?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: suppression_find
SELECT address FROM conveyor_suppressions
WHERE channel = ? AND address IN (SELECT value FROM json_each(?));

-- name: suppression_remove
DELETE FROM conveyor_suppressions WHERE channel = :channel AND address = :address;

-- name: suppression_list
SELECT channel, address, reason, created_at
FROM conveyor_suppressions
WHERE (:channel IS NULL OR channel = :channel)
  AND (:after IS NULL OR channel || char(31) || address > :after)
ORDER BY channel, address
LIMIT :limit;
