-- API keys of the native API, WebSocket stream and dashboard. Only a SHA-256 of the token
-- is kept (tokens are 256 random bits, so a fast hash is enough). Revoking keeps the row
-- (who had access, until when); a revoked key's name may be given to a new key.
CREATE TABLE conveyor_api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    grants TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX conveyor_api_keys_active_name ON conveyor_api_keys (name)
    WHERE revoked_at IS NULL;
