-- SQLite dialect of the delivery ledger and suppression list; the same names exist in
-- ../postgres/ledger.sql. "now" always comes from Python. Batches of ids travel as one
-- JSON array (json_each) rather than as a parameter per id.

-- name: delivery_put_many
-- :rows is a JSON array of [id, channel, recipient], inserted in its order; the statement's
-- row count says how many were new (the enqueue reads delivery_statuses only when not
-- all). One statement for the whole batch, not one per row: the storage's thread then
-- needs Python's GIL once, not once a row, while it holds the file's write lock (with a
-- busy event loop in the same process, each reacquisition could keep every other writer
-- waiting). The made state is kept for the delivery view.
INSERT INTO conveyor_deliveries (id, channel, recipient, status, attempts, updated_at,
                                 expires_at, made_status, made_at)
SELECT r.value ->> 0, r.value ->> 1, r.value ->> 2, :status, 0, :now, :expires_at,
       :status, :now
FROM json_each(:rows) AS r
WHERE true  -- lets the parser tell the upsert's ON from a join's
ON CONFLICT (id) DO NOTHING;

-- name: delivery_statuses
-- Read only: the statuses of a batch of ids, for a delivery worker's first look at a batch;
-- also read in the same BEGIN IMMEDIATE transaction before a put or begin (PostgreSQL has
-- no such second statement there: a data-modifying CTE returns them from the one
-- statement that writes, so concurrent begins cannot interleave).
-- One row, a JSON object of id to status: a row per id would be a step each, and the
-- storage's thread takes the GIL back after every step while it may hold the write lock.
SELECT json_group_object(id, status) FROM conveyor_deliveries
WHERE id IN (SELECT value FROM json_each(?));

-- name: delivery_begin_many
-- :rows as for delivery_put_many (ids not repeated). Final rows (FINAL_STATUSES: sent,
-- failed, unknown, skipped, digested) are left alone: that is the whole point. A row
-- still `sending` was handed to a provider by an attempt that never recorded its outcome
-- (the worker died): this attempt is a resend after a crash, counted.
INSERT INTO conveyor_deliveries (id, channel, recipient, status, attempts, updated_at,
                                 expires_at)
SELECT r.value ->> 0, r.value ->> 1, r.value ->> 2, 'sending', 1, :now, :expires_at
FROM json_each(:rows) AS r
WHERE true
ON CONFLICT (id) DO UPDATE SET
    status = 'sending', attempts = attempts + 1, updated_at = excluded.updated_at,
    resends = resends + (status = 'sending')
WHERE status NOT IN ('sent', 'failed', 'unknown', 'skipped', 'digested');

-- name: delivery_finish_many
-- :updates is a JSON array of [status, error, provider id, id], no id twice (an UPDATE
-- FROM applies one match per row; the ledger keeps an id's last outcome). started_at: when
-- the attempt whose outcome this is was handed over (kept when the outcome is recorded
-- again unchanged).
UPDATE conveyor_deliveries AS d
SET status = u.value ->> 0, error = u.value ->> 1,
    provider_id = coalesce(u.value ->> 2, d.provider_id), updated_at = :now,
    started_at = CASE WHEN d.status = 'sending' THEN d.updated_at
                      WHEN d.status = u.value ->> 0 AND d.error IS u.value ->> 1
                      THEN d.started_at END
FROM json_each(:updates) AS u
WHERE d.id = u.value ->> 3;

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
