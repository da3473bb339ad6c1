-- API keys (see migrations/0004_api_keys.sql).

-- name: api_key_insert
-- Nothing is inserted when an active key has this name (the caller says so).
INSERT INTO conveyor_api_keys (id, name, token_hash, grants, secret, created_at)
VALUES (:id, :name, :token_hash, :grants, :secret, :now)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: api_key_by_hash
SELECT id, name, grants, created_at, revoked_at FROM conveyor_api_keys
WHERE token_hash = :token_hash AND revoked_at IS NULL;

-- name: api_key_by_id
-- The SQS endpoint's lookup: the access key id of a SigV4 signature is the key's id.
SELECT id, name, grants, created_at, revoked_at, secret FROM conveyor_api_keys
WHERE id = :key_id AND revoked_at IS NULL;

-- name: api_key_list
SELECT id, name, grants, created_at, revoked_at FROM conveyor_api_keys
ORDER BY name, created_at;

-- name: api_key_revoke
UPDATE conveyor_api_keys SET revoked_at = :now
WHERE (name = :name OR id = :name) AND revoked_at IS NULL
RETURNING id;

-- name: api_key_count
-- Revoked keys count too: once keys were configured, revoking the last one must not
-- open a loopback server to everyone.
SELECT count(*) FROM conveyor_api_keys;
