-- API keys (see migrations/0004_api_keys.sql).

-- name: api_key_insert
-- Nothing is inserted when an active key has this name (the caller says so).
INSERT INTO conveyor_api_keys (id, name, token_hash, grants, secret, created_at)
VALUES ($1, $2, $3, $4::jsonb, $6, COALESCE($5::bigint, conveyor_now_ms()))
ON CONFLICT DO NOTHING
RETURNING id;

-- name: api_key_by_hash
SELECT id, name, grants::text, created_at, revoked_at FROM conveyor_api_keys
WHERE token_hash = $1 AND revoked_at IS NULL;

-- name: api_key_by_id
-- The SQS endpoint's lookup: the access key id of a SigV4 signature is the key's id.
SELECT id, name, grants::text, created_at, revoked_at, secret FROM conveyor_api_keys
WHERE id = $1 AND revoked_at IS NULL;

-- name: api_key_list
SELECT id, name, grants::text, created_at, revoked_at FROM conveyor_api_keys
ORDER BY name, created_at;

-- name: api_key_revoke
UPDATE conveyor_api_keys SET revoked_at = COALESCE($2::bigint, conveyor_now_ms())
WHERE (name = $1 OR id = $1) AND revoked_at IS NULL
RETURNING id;

-- name: api_key_count
-- Revoked keys count too: once keys were configured, revoking the last one must not
-- open a loopback server to everyone.
SELECT count(*) FROM conveyor_api_keys;
