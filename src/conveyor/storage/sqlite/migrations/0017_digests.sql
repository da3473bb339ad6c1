-- Digests (issue 14): a recipient's open window per digest key, the events merged into
-- it, and the held queue messages whose release a change of quiet hours moves.
-- One open digest per (recipient, key); `closing` while a releaser holds its lease.
CREATE TABLE conveyor_digests (
    id TEXT PRIMARY KEY,
    recipient_id TEXT NOT NULL,
    digest_key TEXT NOT NULL,
    category TEXT NOT NULL,
    template TEXT NOT NULL,
    release_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    events INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX conveyor_digests_open ON conveyor_digests (recipient_id, digest_key)
    WHERE state = 'open';
CREATE INDEX conveyor_digests_due ON conveyor_digests (release_at) WHERE state = 'open';
CREATE INDEX conveyor_digests_closing ON conveyor_digests (lease_until)
    WHERE state = 'closing';

-- An event id is unique across digests: the same notification asked twice joins once.
CREATE TABLE conveyor_digest_events (
    event_id TEXT PRIMARY KEY,
    digest_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL,
    targets TEXT NOT NULL
);
CREATE INDEX conveyor_digest_events_digest ON conveyor_digest_events (digest_id, created_at);

CREATE TABLE conveyor_holds (
    recipient_id TEXT NOT NULL,
    message_id BLOB NOT NULL,
    queue_id INTEGER NOT NULL,
    release_at INTEGER NOT NULL,
    PRIMARY KEY (recipient_id, message_id)
) WITHOUT ROWID;
CREATE INDEX conveyor_holds_release ON conveyor_holds (release_at);
