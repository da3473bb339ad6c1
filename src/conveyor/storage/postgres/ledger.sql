-- PostgreSQL dialect of the delivery ledger and suppression list; the same names exist in
-- ../sqlite/ledger.sql. Batches travel as arrays (unnest), one statement each. A null
-- "now" means the database clock.

-- name: delivery_put_many
-- The made state is kept for the delivery view (made_status, made_at).
INSERT INTO conveyor_deliveries (id, channel, recipient, status, attempts, updated_at,
                                 expires_at, made_status, made_at)
SELECT b.id, b.channel, b.recipient, $4, 0, t.now, t.now + $5::bigint, $4, t.now
FROM (SELECT COALESCE($6::bigint, conveyor_now_ms()) AS now) t,
     unnest($1::text[], $2::text[], $3::text[]) AS b(id, channel, recipient)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: delivery_statuses
-- Read only: each id's status (null: not recorded), in the order given.
SELECT d.status
FROM unnest($1::text[]) WITH ORDINALITY AS i(id, ord)
LEFT JOIN conveyor_deliveries d ON d.id = i.id
ORDER BY i.ord;

-- name: delivery_begin_many
-- The previous status of each row (locked, so a concurrent begin of the same id waits and
-- then sees `sending`), and every unfinished row marked `sending` with one more attempt.
-- All parts read the same snapshot, so `prev` is the state before this statement. A row
-- still `sending` was handed to a provider by an attempt that never recorded its outcome
-- (the worker died): this attempt is a resend after a crash, counted in `resends`.
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY
        AS b(id, channel, recipient, ord)
), t AS (
    SELECT COALESCE($5::bigint, conveyor_now_ms()) AS now
), prev AS (
    SELECT d.id, d.status FROM conveyor_deliveries d JOIN input i ON i.id = d.id
    ORDER BY d.id FOR UPDATE OF d
), up AS (
    INSERT INTO conveyor_deliveries AS d (id, channel, recipient, status, attempts,
                                          updated_at, expires_at)
    SELECT i.id, i.channel, i.recipient, 'sending', 1, t.now, t.now + $4::bigint
    FROM input i, t
    ORDER BY i.id
    ON CONFLICT (id) DO UPDATE SET
        status = 'sending', attempts = d.attempts + 1, updated_at = EXCLUDED.updated_at,
        resends = d.resends + (d.status = 'sending')::int
    WHERE d.status NOT IN ('sent', 'failed', 'unknown', 'skipped', 'digested')
)
SELECT prev.status FROM input LEFT JOIN prev ON prev.id = input.id ORDER BY input.ord;

-- name: delivery_finish_many
-- started_at: when the attempt whose outcome this is was handed over (kept when the
-- outcome is recorded again unchanged).
UPDATE conveyor_deliveries d
SET status = u.status, error = u.error, provider_id = COALESCE(u.pid, d.provider_id),
    updated_at = t.now,
    started_at = CASE WHEN d.status = 'sending' THEN d.updated_at
                      WHEN d.status = u.status AND d.error IS NOT DISTINCT FROM u.error
                      THEN d.started_at END
FROM (SELECT COALESCE($5::bigint, conveyor_now_ms()) AS now) t,
     unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(id, status, error, pid)
WHERE d.id = u.id;

-- name: delivery_get
SELECT id, channel, recipient, status, attempts, error, provider_id, updated_at, expires_at,
       resends
FROM conveyor_deliveries
WHERE id = $1 AND expires_at > COALESCE($2::bigint, conveyor_now_ms());

-- name: delivery_counts
SELECT channel, status, count(*)
FROM conveyor_deliveries
WHERE ($1::text IS NULL OR channel = $1) AND expires_at > COALESCE($2::bigint, conveyor_now_ms())
GROUP BY channel, status;

-- name: delivery_resent_counts
SELECT channel, count(*)
FROM conveyor_deliveries
WHERE resends > 0 AND ($1::text IS NULL OR channel = $1)
  AND expires_at > COALESCE($2::bigint, conveyor_now_ms())
GROUP BY channel;

-- name: delivery_expire
DELETE FROM conveyor_deliveries
WHERE id IN (SELECT id FROM conveyor_deliveries
             WHERE expires_at <= COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2);

-- name: suppression_add_many
INSERT INTO conveyor_suppressions (channel, address, reason, created_at)
SELECT b.channel, b.address, b.reason, COALESCE($4::bigint, conveyor_now_ms())
FROM unnest($1::text[], $2::text[], $3::text[]) AS b(channel, address, reason)
ON CONFLICT DO NOTHING;

-- name: suppression_find
SELECT address FROM conveyor_suppressions WHERE channel = $1 AND address = ANY($2::text[]);

-- name: suppression_remove
DELETE FROM conveyor_suppressions WHERE channel = $1 AND address = $2;

-- name: suppression_list
SELECT channel, address, reason, created_at
FROM conveyor_suppressions
WHERE ($1::text IS NULL OR channel = $1)
  AND ($2::text IS NULL OR channel || chr(31) || address > $2)
ORDER BY channel, address
LIMIT $3;
