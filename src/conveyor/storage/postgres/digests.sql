-- PostgreSQL dialect of the digest tables (migrations/0015_digests.sql); the same names
-- exist in ../sqlite/digests.sql. A null "now" means the database clock.

-- name: digest_event_find
-- A notification asked again (the same event id) joins nothing: the digest that has it.
SELECT d.id, d.recipient_id, d.digest_key, d.category, d.template, d.release_at, d.state,
       d.events, d.created_at, d.lease_until
FROM conveyor_digest_events e JOIN conveyor_digests d ON d.id = e.digest_id
WHERE e.event_id = $1;

-- name: digest_close_due
-- An open digest whose window ended but that no releaser claimed yet takes no more events:
-- it is handed to the releasers (lease 0: claimable now) and a new window opens.
UPDATE conveyor_digests SET state = 'closing', lease_until = 0
WHERE recipient_id = $1 AND digest_key = $2 AND state = 'open'
  AND release_at <= COALESCE($3::bigint, conveyor_now_ms());

-- name: digest_open
-- Concurrent openers meet at the partial unique index; the later one does nothing.
INSERT INTO conveyor_digests (id, recipient_id, digest_key, category, template, release_at,
                              state, events, lease_until, created_at)
SELECT $1, $2, $3, $4, $5, t.now + $6::bigint, 'open', 0, 0, t.now
FROM (SELECT COALESCE($7::bigint, conveyor_now_ms()) AS now) t
ON CONFLICT (recipient_id, digest_key) WHERE state = 'open' DO NOTHING;

-- name: digest_lock_open
-- Locked until the event is in: a releaser's claim waits, then sees the event.
SELECT id FROM conveyor_digests
WHERE recipient_id = $1 AND digest_key = $2 AND state = 'open'
  AND release_at > COALESCE($3::bigint, conveyor_now_ms())
FOR UPDATE;

-- name: digest_event_add
INSERT INTO conveyor_digest_events (event_id, digest_id, created_at, data, targets)
VALUES ($1, $2, COALESCE($5::bigint, conveyor_now_ms()), $3, $4)
ON CONFLICT (event_id) DO NOTHING;

-- name: digest_count
UPDATE conveyor_digests SET events = events + $2 WHERE id = $1
RETURNING id, recipient_id, digest_key, category, template, release_at, state, events,
          created_at, lease_until;

-- name: digest_due
-- A read before the claim: an idle releaser polls without taking the write lock.
SELECT 1 FROM conveyor_digests
WHERE (state = 'open' AND release_at <= COALESCE($1::bigint, conveyor_now_ms())) OR (state = 'closing' AND lease_until <= COALESCE($1::bigint, conveyor_now_ms()))
LIMIT 1;

-- name: digest_claim
-- Due digests, and those whose releaser's lease lapsed (it died mid-release), leased to
-- this releaser; SKIP LOCKED: a digest taking an event right now is claimed next round.
UPDATE conveyor_digests d SET state = 'closing', lease_until = t.now + $2::bigint
FROM (SELECT COALESCE($1::bigint, conveyor_now_ms()) AS now) t
WHERE d.id IN (
    SELECT c.id FROM conveyor_digests c
    WHERE (c.state = 'open' AND c.release_at <= t.now)
       OR (c.state = 'closing' AND c.lease_until <= t.now)
    ORDER BY c.release_at LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.recipient_id, d.digest_key, d.category, d.template, d.release_at,
          d.state, d.events, d.created_at, d.lease_until;

-- name: digest_events
SELECT event_id, created_at, data, targets FROM conveyor_digest_events
WHERE digest_id = $1 ORDER BY created_at, event_id;

-- name: digest_finish_events
DELETE FROM conveyor_digest_events WHERE digest_id = $1;

-- name: digest_finish
-- Only by the releaser whose lease it is (a lapsed one finds its digest re-leased).
DELETE FROM conveyor_digests WHERE id = $1 AND state = 'closing' AND lease_until = $2;

-- name: digest_list
SELECT id, recipient_id, digest_key, category, template, release_at, state, events,
       created_at, lease_until
FROM conveyor_digests WHERE recipient_id = $1 ORDER BY created_at, id;

-- name: hold_add_many
INSERT INTO conveyor_holds (recipient_id, message_id, queue_id, release_at)
SELECT b.recipient_id, b.message_id, b.queue_id, b.release_at
FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::bigint[])
    AS b(recipient_id, message_id, queue_id, release_at)
ON CONFLICT (recipient_id, message_id) DO UPDATE SET release_at = EXCLUDED.release_at;

-- name: hold_retime_messages
-- Held messages not yet released move to the new release time; one already visible or
-- received is left alone (it is on its way). By id as message_delete_ids (`queue_id + 0`).
UPDATE conveyor_messages m SET visible_at = $2::bigint
FROM (SELECT COALESCE($3::bigint, conveyor_now_ms()) AS now) t, conveyor_holds h
WHERE h.recipient_id = $1 AND h.release_at > t.now AND m.id = h.message_id
  AND m.queue_id + 0 = h.queue_id AND NOT m.leased AND m.receive_count = 0
  AND m.visible_at > t.now;

-- name: hold_retime
UPDATE conveyor_holds SET release_at = $2::bigint
WHERE recipient_id = $1 AND release_at > COALESCE($3::bigint, conveyor_now_ms());

-- name: hold_expire
DELETE FROM conveyor_holds
WHERE ctid IN (SELECT ctid FROM conveyor_holds
               WHERE release_at <= COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2);
