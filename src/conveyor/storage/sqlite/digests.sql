-- SQLite dialect of the digest tables (migrations/0015_digests.sql); the same names exist
-- in ../postgres/digests.sql. Writes run inside BEGIN IMMEDIATE (one writer at a time),
-- so an event and a releaser's claim never interleave.

-- name: digest_event_find
-- A notification asked again (the same event id) joins nothing: the digest that has it.
SELECT d.id, d.recipient_id, d.digest_key, d.category, d.template, d.release_at, d.state,
       d.events, d.created_at, d.lease_until
FROM conveyor_digest_events e JOIN conveyor_digests d ON d.id = e.digest_id
WHERE e.event_id = :event_id;

-- name: digest_close_due
-- An open digest whose window ended but that no releaser claimed yet takes no more events:
-- it is handed to the releasers (lease 0: claimable now) and a new window opens.
UPDATE conveyor_digests SET state = 'closing', lease_until = 0
WHERE recipient_id = :recipient_id AND digest_key = :key AND state = 'open'
  AND release_at <= :now;

-- name: digest_open
INSERT INTO conveyor_digests (id, recipient_id, digest_key, category, template, release_at,
                              state, events, lease_until, created_at)
VALUES (:id, :recipient_id, :key, :category, :template, :now + :window_ms, 'open', 0, 0,
        :now)
ON CONFLICT DO NOTHING;

-- name: digest_lock_open
SELECT id FROM conveyor_digests
WHERE recipient_id = :recipient_id AND digest_key = :key AND state = 'open'
  AND release_at > :now;

-- name: digest_event_add
INSERT INTO conveyor_digest_events (event_id, digest_id, created_at, data, targets)
VALUES (:event_id, :digest_id, :now, :data, :targets)
ON CONFLICT (event_id) DO NOTHING;

-- name: digest_count
UPDATE conveyor_digests SET events = events + :added WHERE id = :id
RETURNING id, recipient_id, digest_key, category, template, release_at, state, events,
          created_at, lease_until;

-- name: digest_due
-- A read before the claim: an idle releaser polls without taking the write lock.
SELECT 1 FROM conveyor_digests
WHERE (state = 'open' AND release_at <= :now) OR (state = 'closing' AND lease_until <= :now)
LIMIT 1;

-- name: digest_claim
-- Due digests, and those whose releaser's lease lapsed (it died mid-release).
UPDATE conveyor_digests SET state = 'closing', lease_until = :now + :lease_ms
WHERE id IN (
    SELECT id FROM conveyor_digests
    WHERE (state = 'open' AND release_at <= :now)
       OR (state = 'closing' AND lease_until <= :now)
    ORDER BY release_at LIMIT :limit)
RETURNING id, recipient_id, digest_key, category, template, release_at, state, events,
          created_at, lease_until;

-- name: digest_events
SELECT event_id, created_at, data, targets FROM conveyor_digest_events
WHERE digest_id = :digest_id ORDER BY created_at, event_id;

-- name: digest_finish_events
DELETE FROM conveyor_digest_events WHERE digest_id = :digest_id;

-- name: digest_finish
-- Only by the releaser whose lease it is (a lapsed one finds its digest re-leased).
DELETE FROM conveyor_digests
WHERE id = :digest_id AND state = 'closing' AND lease_until = :lease_until;

-- name: digest_list
SELECT id, recipient_id, digest_key, category, template, release_at, state, events,
       created_at, lease_until
FROM conveyor_digests WHERE recipient_id = :recipient_id ORDER BY created_at, id;

-- name: hold_add_many
INSERT INTO conveyor_holds (recipient_id, message_id, queue_id, release_at)
VALUES (:recipient_id, :message_id, :queue_id, :release_at)
ON CONFLICT (recipient_id, message_id) DO UPDATE SET release_at = excluded.release_at;

-- name: hold_retime_messages
-- Held messages not yet released move to the new release time; one already visible or
-- received is left alone (it is on its way).
UPDATE conveyor_messages SET visible_at = :release_at
WHERE id IN (SELECT message_id FROM conveyor_holds
             WHERE recipient_id = :recipient_id AND release_at > :now)
  AND leased = 0 AND receive_count = 0 AND visible_at > :now;

-- name: hold_retime
UPDATE conveyor_holds SET release_at = :release_at
WHERE recipient_id = :recipient_id AND release_at > :now;

-- name: hold_expire
DELETE FROM conveyor_holds WHERE (recipient_id, message_id) IN (
    SELECT recipient_id, message_id FROM conveyor_holds WHERE release_at <= :now
    LIMIT :limit);
