-- PostgreSQL's combined writes of the notification path (postgres_notify_tx.py). SQLite
-- runs ledger.sql's and queries.sql's statements by name in one BEGIN IMMEDIATE instead.

-- name: delivery_put_send
-- A notifier's enqueue in one statement, one round trip: ledger.sql's delivery_put_many
-- (its made state too: without it every `begin` kept the made state as an event row, one
-- per notification) and queries.sql's message_insert (with message_insert_notify's
-- wake-up when $16 is set), both done only when none of the delivery ids ($11) is recorded yet; else nothing is
-- written and the known ids come back (the caller enqueues the new ones again).
-- $1-$10 are message_insert's. No ON CONFLICT: an id recorded by a concurrent enqueue
-- after this statement's snapshot (so not in `known`) fails the statement with a unique
-- violation, so that neither half stays, and the storage runs it again (it then sees the
-- id as known).
WITH t AS (
    SELECT COALESCE($2::bigint, conveyor_now_ms()) AS now,
           (SELECT slot FROM conveyor_message_rotation) AS slot
), known AS (
    SELECT id FROM conveyor_deliveries WHERE id = ANY ($11::text[])
), put AS (
    INSERT INTO conveyor_deliveries (id, channel, recipient, status, attempts, updated_at,
                                     expires_at, made_status, made_at)
    SELECT b.id, b.channel, b.recipient, $14, 0, t.now, t.now + $15::bigint, $14, t.now
    FROM t, unnest($11::text[], $12::text[], $13::text[]) AS b(id, channel, recipient)
    WHERE NOT EXISTS (SELECT FROM known)
    RETURNING 1
), sent AS (
    INSERT INTO conveyor_messages (id, queue_id, priority, visible_at, sent_at, body_kind,
                                   body, attributes, group_id, dedup_id, slot)
    SELECT u.id, $1, u.priority, t.now + u.delay_ms, t.now, u.body_kind, u.body,
           u.attributes, u.group_id, u.dedup_id, t.slot
    FROM t, unnest($3::uuid[], $4::smallint[], $5::bigint[], $6::smallint[], $7::text[],
                   $8::text[], $9::text[], $10::text[])
             AS u(id, priority, delay_ms, body_kind, body, attributes, group_id, dedup_id)
    WHERE NOT EXISTS (SELECT FROM known)
    RETURNING 1
)
SELECT array(SELECT id FROM known),
       (SELECT count(*) FROM put),
       (SELECT count(*) FROM sent),
       CASE WHEN $16::text IS NOT NULL AND NOT EXISTS (SELECT FROM known)
            THEN pg_notify('conveyor_wake', $16::text) END;
