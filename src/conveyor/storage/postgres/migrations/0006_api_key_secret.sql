-- The SigV4 secret of an API key (its token), which the SQS endpoint needs to open
-- (sealed with CONVEYOR_KEYS_SECRET when that is set, see conveyor/sealing.py):
-- SigV4 is an HMAC over a shared secret, so whatever checks a signature can also make one
-- and no hash of the token will do. NULL for keys made before this column: they still
-- work as bearer tokens, and the SQS endpoint asks for a new key.
ALTER TABLE conveyor_api_keys ADD COLUMN secret text;
