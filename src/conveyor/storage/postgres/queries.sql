-- PostgreSQL dialect. Named blocks; the same names exist in ../sqlite/queries.sql.
-- Parameters are positional. `COALESCE($n::bigint, conveyor_now_ms())` is "now": the
-- database clock unless a test injects one. Batches travel as arrays (one round trip).
-- No statement relies on session state, so they work behind PgBouncer's transaction mode.
-- Statements naming conveyor_messages also run, renamed, on conveyor_messages_unlogged
-- for queues whose durability is 'unlogged' (see postgres_storage.py: UNLOGGED).

-- name: queue_insert
INSERT INTO conveyor_queues (region, name, attributes, paused, created_at, updated_at)
SELECT $1, $2, $3, $4, t.now, t.now
FROM (SELECT COALESCE($5::bigint, conveyor_now_ms()) AS now) t
ON CONFLICT (region, name) DO NOTHING
RETURNING id, region, name, attributes, created_at, updated_at;

-- name: queue_get
SELECT id, region, name, attributes, created_at, updated_at
FROM conveyor_queues WHERE region = $1 AND name = $2;

-- name: queue_get_by_id
SELECT id, region, name, attributes, created_at, updated_at
FROM conveyor_queues WHERE id = $1;

-- name: queue_regions
SELECT DISTINCT region FROM conveyor_queues ORDER BY region;

-- name: queue_catalog_stamp
-- Changes when a queue of the region is created, changed or deleted: lists kept in memory
-- (the dashboard's) re-read the queues only then. One pass over the queues table, no rows.
SELECT count(*), COALESCE(max(updated_at), 0) FROM conveyor_queues WHERE region = $1;

-- name: queue_list
SELECT id, region, name, attributes, created_at, updated_at
FROM conveyor_queues
WHERE region = $1 AND left(name, length($2)) = $2 AND name COLLATE "C" > $3
ORDER BY name COLLATE "C" LIMIT $4;

-- name: queue_update
UPDATE conveyor_queues
SET attributes = $2, paused = $3, updated_at = COALESCE($4::bigint, conveyor_now_ms())
WHERE id = $1
RETURNING id, region, name, attributes, created_at, updated_at;

-- name: queue_delete
DELETE FROM conveyor_queues WHERE id = $1;

-- name: queue_delete_messages
DELETE FROM conveyor_messages WHERE queue_id = $1;

-- name: queue_delete_dedup
DELETE FROM conveyor_dedup WHERE queue_id = $1;

-- name: queue_stats
SELECT count(*) FILTER (WHERE m.visible_at <= t.now),
       count(*) FILTER (WHERE m.visible_at > t.now AND m.leased),
       count(*) FILTER (WHERE m.visible_at > t.now AND NOT m.leased),
       min(m.sent_at),
       t.now,
       (SELECT count(*) FROM conveyor_messages d WHERE d.source_queue_id = $1)
FROM (SELECT COALESCE($2::bigint, conveyor_now_ms()) AS now) t
LEFT JOIN conveyor_messages m ON m.queue_id = $1
GROUP BY t.now;

-- name: queue_stats_all
SELECT m.queue_id,
       count(*) FILTER (WHERE m.visible_at <= t.now),
       count(*) FILTER (WHERE m.visible_at > t.now AND m.leased),
       count(*) FILTER (WHERE m.visible_at > t.now AND NOT m.leased),
       min(m.sent_at),
       t.now
FROM (SELECT COALESCE($2::bigint, conveyor_now_ms()) AS now) t,
     conveyor_messages m JOIN conveyor_queues q ON q.id = m.queue_id
WHERE q.region = $1
GROUP BY m.queue_id, t.now;

-- name: queue_dead_letters_all
SELECT m.source_queue_id, count(*)
FROM conveyor_messages m JOIN conveyor_queues q ON q.id = m.source_queue_id
WHERE q.region = $1 AND m.source_queue_id IS NOT NULL
GROUP BY m.source_queue_id;

-- name: dedup_claim
-- Wins each deduplication id unless a live entry holds it; returns the ids won. A
-- concurrent sender of the same id waits on our row, then sees it and loses.
INSERT INTO conveyor_dedup (queue_id, dedup_id, message_id, expires_at)
SELECT $1, d.dedup_id, d.message_id, t.now + 300000
FROM (SELECT COALESCE($2::bigint, conveyor_now_ms()) AS now) t,
     unnest($3::text[], $4::uuid[]) AS d(dedup_id, message_id)
ON CONFLICT (queue_id, dedup_id) DO UPDATE
    SET message_id = EXCLUDED.message_id, expires_at = EXCLUDED.expires_at
    WHERE conveyor_dedup.expires_at <= EXCLUDED.expires_at - 300000
RETURNING dedup_id;

-- name: dedup_get
SELECT dedup_id, message_id FROM conveyor_dedup WHERE queue_id = $1 AND dedup_id = ANY($2::text[]);

-- name: message_insert
-- The slot (migration 0008) read once per statement: the column's default would read it
-- once per row (4 us a message, measured).
INSERT INTO conveyor_messages (id, queue_id, priority, visible_at, sent_at, body_kind, body,
                               attributes, group_id, dedup_id, slot)
SELECT u.id, $1, u.priority, t.now + u.delay_ms, t.now, u.body_kind, u.body, u.attributes,
       u.group_id, u.dedup_id, t.slot
FROM (SELECT COALESCE($2::bigint, conveyor_now_ms()) AS now,
             (SELECT slot FROM conveyor_message_rotation) AS slot) t,
     unnest($3::uuid[], $4::smallint[], $5::bigint[], $6::smallint[], $7::text[], $8::text[],
            $9::text[], $10::text[])
         AS u(id, priority, delay_ms, body_kind, body, attributes, group_id, dedup_id);

-- name: message_insert_notify
-- Only in PostgreSQL: message_insert and the wake-up NOTIFY of signal_bump ($11: the queue
-- id) in one statement, one round trip (SQLite bumps its signal row in the send's
-- transaction). The notification is delivered when the insert commits.
WITH inserted AS (
    INSERT INTO conveyor_messages (id, queue_id, priority, visible_at, sent_at, body_kind,
                                   body, attributes, group_id, dedup_id, slot)
    SELECT u.id, $1, u.priority, t.now + u.delay_ms, t.now, u.body_kind, u.body,
           u.attributes, u.group_id, u.dedup_id, t.slot
    FROM (SELECT COALESCE($2::bigint, conveyor_now_ms()) AS now,
                 (SELECT slot FROM conveyor_message_rotation) AS slot) t,
         unnest($3::uuid[], $4::smallint[], $5::bigint[], $6::smallint[], $7::text[],
                $8::text[], $9::text[], $10::text[])
             AS u(id, priority, delay_ms, body_kind, body, attributes, group_id, dedup_id)
    RETURNING 1
)
SELECT pg_notify('conveyor_wake', $11::text);

-- name: message_insert_fifo
-- Only in PostgreSQL: sequence numbers from a sequence inside the insert (SQLite takes them
-- with counter_take first, then inserts with message_insert).
-- FIFO sends hold the queue's advisory lock (fifo_lock), so sequence order is commit order.
INSERT INTO conveyor_messages (id, queue_id, priority, visible_at, sent_at, body_kind, body,
                               attributes, group_id, dedup_id, sequence, slot)
SELECT u.id, $1, u.priority, t.now + u.delay_ms, t.now, u.body_kind, u.body, u.attributes,
       u.group_id, u.dedup_id, nextval('conveyor_fifo_sequence'), t.slot
FROM (SELECT COALESCE($2::bigint, conveyor_now_ms()) AS now,
             (SELECT slot FROM conveyor_message_rotation) AS slot) t,
     unnest($3::uuid[], $4::smallint[], $5::bigint[], $6::smallint[], $7::text[], $8::text[],
            $9::text[], $10::text[]) WITH ORDINALITY
         AS u(id, priority, delay_ms, body_kind, body, attributes, group_id, dedup_id, ord)
ORDER BY u.ord
RETURNING id, sequence;

-- name: fifo_lock
-- Only in PostgreSQL: SQLite's BEGIN IMMEDIATE already admits one writer at a time.
-- Serialises sends and receives of one FIFO queue for the rest of the transaction.
SELECT pg_advisory_xact_lock(1667, $1::int);

-- name: fifo_gates
-- Per group, the first sequence that must wait: its earliest invisible message.
SELECT group_id, min(sequence) FROM conveyor_messages
WHERE queue_id = $1 AND visible_at > COALESCE($2::bigint, conveyor_now_ms())
  AND sequence IS NOT NULL
GROUP BY group_id;

-- name: fifo_visible
SELECT id, group_id, sequence, receive_count FROM conveyor_messages
WHERE queue_id = $1 AND sequence > $2 AND visible_at <= COALESCE($3::bigint, conveyor_now_ms())
  AND sequence IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM conveyor_queues WHERE id = $1 AND paused)
ORDER BY sequence LIMIT $4;

-- name: fifo_dead_letter
UPDATE conveyor_messages
SET queue_id = $2, source_queue_id = queue_id, visible_at = COALESCE($3::bigint, conveyor_now_ms()),
    leased = false
WHERE id = ANY($1::uuid[]);

-- name: fifo_claim
UPDATE conveyor_messages m
SET visible_at = t.now + $2, leased = true, token = ((random() * 35184372088831)::bigint << 8) | m.slot,
    receive_count = m.receive_count + 1, first_received_at = COALESCE(m.first_received_at, t.now)
FROM (SELECT COALESCE($3::bigint, conveyor_now_ms()) AS now) t
WHERE m.id = ANY($1::uuid[])
RETURNING m.id, m.token, m.receive_count, m.sent_at, m.first_received_at, m.visible_at,
          m.body_kind, m.body, m.attributes, m.priority, m.group_id, m.dedup_id, m.last_error,
          m.sequence;

-- name: message_ready
-- One seek per priority (0-9) on the claim index: the in-flight and delayed rows that
-- sort after the visible ones of each priority are never walked.
SELECT EXISTS (
    SELECT 1 FROM conveyor_messages
    WHERE queue_id = $1 AND priority = ANY ('{9,8,7,6,5,4,3,2,1,0}'::smallint[])
      AND visible_at <= COALESCE($2::bigint, conveyor_now_ms())
) AND NOT EXISTS (SELECT 1 FROM conveyor_queues WHERE id = $1 AND paused);

-- name: message_claim
-- One statement, one round trip: pick the head of the queue (skipping rows other consumers
-- hold), move rows already received max_receive_count times to the dead-letter queue,
-- lease the rest. The statement lives in a function (migration 0022) so that it carries its
-- planner pins (the claim index walk, even on tables never analysed) and its asynchronous
-- commit without a transaction around it. The token's low byte is the row's slot: the
-- receipt handle so names the partition that acknowledging and extending look in.
-- An over-received flow node comes back with a NULL token instead of going to the
-- dead-letter queue (conveyor_messages_claim_v2, migration 0023): the storage moves it with
-- its flow end in one transaction (message_dead_letter_ids, postgres_flows.py).
-- conveyor_messages_claim_v3 (migration 0026) is that claim passing over a slot the
-- maintenance is truncating, instead of waiting for its lock.
SELECT * FROM conveyor_messages_claim_v3($1, $2, $3, $4, $5, $6, '{}');

-- name: message_claim_skip
-- message_claim passing over the rows of some message groups ($7): a worker's per-key
-- limited jobs whose keys are at their limit (conveyor.worker.keys), so a backlog of one
-- key does not hold up the others. Those rows are still walked in the index, not leased.
SELECT * FROM conveyor_messages_claim_v3($1, $2, $3, $4, $5, $6, $7::text[]);

-- name: message_dead_letter_ids
-- Only in PostgreSQL: the over-received flow nodes the claim left in place (migration 0023)
-- to the dead-letter queue ($3), unless leased or moved since; run in the transaction that
-- records their flow ends (postgres_flows.py). SQLite's message_dead_letter does it in the
-- receive's own transaction. By id as message_retry (`queue_id + 0`).
UPDATE conveyor_messages m
SET queue_id = $3, source_queue_id = m.queue_id,
    visible_at = COALESCE($5::bigint, conveyor_now_ms()), leased = false
WHERE m.id = ANY($2::uuid[]) AND m.queue_id + 0 = $1 AND m.receive_count >= $4
  AND (NOT m.leased OR m.visible_at <= COALESCE($5::bigint, conveyor_now_ms()))
RETURNING m.id;

-- name: message_delete
-- Returns positions in the arrays (1-based). $4: the slots the leases' tokens name
-- (postgres_storage.py looks in every slot only for the misses: rows moved since, or an
-- older version's handles). One round trip: the statement and its planner pins (each
-- slot's primary key walked once for the batch, met by a hash) are a function, migration
-- 0022.
SELECT * FROM conveyor_messages_delete($1, $2::uuid[], $3::bigint[], $4::smallint[]);

-- name: message_delete_leased
-- By message id, whoever holds the lease, while one is held (the WQ API's PATCH).
DELETE FROM conveyor_messages
WHERE id = $2 AND queue_id = $1 AND leased
  AND visible_at > COALESCE($3::bigint, conveyor_now_ms())
  AND ($4::bigint IS NULL OR token = $4);  -- with a token, only under that lease

-- name: message_change_visibility
-- By id and slot ($6) as message_delete (BY_IDS_BEGIN).
UPDATE conveyor_messages m
SET visible_at = t.now + d.ms, leased = d.ms > 0
FROM (SELECT COALESCE($5::bigint, conveyor_now_ms()) AS now) t,
     unnest($2::uuid[], $3::bigint[], $4::bigint[]) AS d(id, token, ms)
WHERE m.id = ANY($2::uuid[]) AND m.slot = ANY($6::smallint[]) AND m.queue_id + 0 = $1
  AND m.id = d.id AND m.token = d.token AND m.leased
RETURNING m.id, m.token;

-- name: message_retry
-- A new token ends the lease: the old handle can no longer delete or extend it. With a
-- dead-letter queue ($7) it moves there at once, its source kept for redrive (the
-- right-hand sides see the row as it was, so source_queue_id takes the old queue_id).
-- By id as message_delete (`queue_id + 0`, BY_ID_BEGIN).
UPDATE conveyor_messages
SET visible_at = COALESCE($6::bigint, conveyor_now_ms()) + $4, leased = false,
    token = (random() * 9007199254740991)::bigint, last_error = $5,
    receive_count = greatest(0, receive_count - $8::int),
    queue_id = COALESCE($7::bigint, queue_id),
    source_queue_id = CASE WHEN $7::bigint IS NULL THEN source_queue_id ELSE queue_id END
WHERE id = $2 AND queue_id + 0 = $1 AND token = $3 AND leased;

-- name: message_peek
SELECT m.id, m.body_kind, m.body, m.attributes, m.receive_count, m.sent_at, m.visible_at,
       m.priority, m.group_id, m.dedup_id, m.last_error, m.source_queue_id, q.name
FROM conveyor_messages m LEFT JOIN conveyor_queues q ON q.id = m.source_queue_id
WHERE m.queue_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3;

-- name: message_move
WITH t AS (SELECT COALESCE($4::bigint, conveyor_now_ms()) AS now),
batch AS (
    SELECT m.id FROM conveyor_messages m
    WHERE m.queue_id = $1 AND m.visible_at <= (SELECT now FROM t)
      AND ($2::bigint IS NOT NULL
           OR m.source_queue_id IN (SELECT id FROM conveyor_queues))
    ORDER BY m.id LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE conveyor_messages m
SET queue_id = COALESCE($2::bigint, m.source_queue_id), source_queue_id = NULL,
    receive_count = 0, first_received_at = NULL, visible_at = (SELECT now FROM t),
    leased = false, token = (random() * 9007199254740991)::bigint
FROM batch WHERE m.id = batch.id;

-- name: message_move_ids
-- These messages (ids) out of a dead-letter queue into $2, as message_move does: receive
-- count reset, visible now; one in flight (leased) stays. A job's retry (broker.jobs).
-- By id as message_delete (`queue_id + 0`, BY_ID_BEGIN).
UPDATE conveyor_messages m
SET queue_id = $2, source_queue_id = NULL, receive_count = 0, first_received_at = NULL,
    visible_at = t.now, leased = false, token = (random() * 9007199254740991)::bigint
FROM (SELECT COALESCE($4::bigint, conveyor_now_ms()) AS now) t
WHERE m.id = ANY($3::uuid[]) AND m.queue_id + 0 = $1 AND m.visible_at <= t.now
RETURNING m.id;

-- name: message_delete_ids
-- These messages (ids) of a queue, unless in flight: a deleted job's dead-letter message.
-- By id as message_delete (`queue_id + 0`, BY_ID_BEGIN).
DELETE FROM conveyor_messages m
WHERE m.id = ANY($2::uuid[]) AND m.queue_id + 0 = $1
  AND m.visible_at <= COALESCE($3::bigint, conveyor_now_ms())
RETURNING m.id;

-- name: message_delete_queued
-- These messages (ids) of a queue unless in flight (leased, lease not lapsed): a cancelled
-- job that is waiting, delayed or between retries never runs. By id as message_delete.
DELETE FROM conveyor_messages m
WHERE m.id = ANY($2::uuid[]) AND m.queue_id + 0 = $1
  AND (NOT m.leased OR m.visible_at <= COALESCE($3::bigint, conveyor_now_ms()))
RETURNING m.id;

-- name: message_count_movable
SELECT count(*) FROM conveyor_messages m
WHERE m.queue_id = $1 AND m.visible_at <= COALESCE($2::bigint, conveyor_now_ms())
  AND ($3::bigint IS NOT NULL OR m.source_queue_id IN (SELECT id FROM conveyor_queues));

-- name: message_expire
DELETE FROM conveyor_messages WHERE id IN (
    SELECT id FROM conveyor_messages WHERE id < $2 AND queue_id = $1 LIMIT $3
    FOR UPDATE SKIP LOCKED);

-- name: dedup_expire
DELETE FROM conveyor_dedup WHERE (queue_id, dedup_id) IN (
    SELECT queue_id, dedup_id FROM conveyor_dedup
    WHERE expires_at <= COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2);

-- name: move_task_insert
INSERT INTO conveyor_move_tasks (id, source_queue_id, status, data, started_at)
VALUES ($1, $2, $3, $4, $5);

-- name: move_task_update
UPDATE conveyor_move_tasks SET status = $2, data = $3 WHERE id = $1 AND status = 'running';

-- name: move_task_get
SELECT data FROM conveyor_move_tasks WHERE id = $1;

-- name: move_task_list
SELECT data FROM conveyor_move_tasks WHERE source_queue_id = $1
ORDER BY started_at DESC LIMIT 100;

-- name: signal_bump
SELECT pg_notify('conveyor_wake', $1::text);

-- name: claim_take
-- Unique messages: wins each key unless a live claim holds it; returns the keys won (see
-- storage/claims.py). A concurrent sender of the same key waits on our row, then loses.
INSERT INTO conveyor_claims (key, message_id, expires_at)
SELECT c.key, c.message_id, t.now + c.ms
FROM (SELECT COALESCE($1::bigint, conveyor_now_ms()) AS now) t,
     unnest($2::text[], $3::uuid[], $4::bigint[]) AS c(key, message_id, ms)
ON CONFLICT (key) DO UPDATE
    SET message_id = EXCLUDED.message_id, expires_at = EXCLUDED.expires_at
    WHERE conveyor_claims.expires_at <= COALESCE($1::bigint, conveyor_now_ms())
RETURNING key;

-- name: claim_get
SELECT key, message_id FROM conveyor_claims WHERE key = ANY($1::text[]);

-- name: claim_replace
-- Debounce: each held message takes the new one's content and due time, but only while it
-- still waits (delayed, never received); one that is due or running is left alone. The
-- row lock makes a concurrent receive wait, then skip it or find it replaced.
UPDATE conveyor_messages m
SET body_kind = n.kind, body = n.body, attributes = n.attributes, priority = n.priority,
    visible_at = t.now + n.delay_ms
FROM (SELECT COALESCE($1::bigint, conveyor_now_ms()) AS now) t,
     unnest($3::text[], $4::smallint[], $5::text[], $6::text[], $7::smallint[],
            $8::bigint[]) AS n(key, kind, body, attributes, priority, delay_ms),
     conveyor_claims c
WHERE c.key = n.key AND c.expires_at > t.now AND m.id = c.message_id
  AND m.queue_id = $2 AND NOT m.leased AND m.receive_count = 0 AND m.visible_at > t.now
RETURNING n.key, m.id;

-- name: claim_put
INSERT INTO conveyor_claims (key, message_id, expires_at)
SELECT c.key, c.message_id, t.now + c.ms
FROM (SELECT COALESCE($1::bigint, conveyor_now_ms()) AS now) t,
     unnest($2::text[], $3::uuid[], $4::bigint[]) AS c(key, message_id, ms)
ON CONFLICT (key) DO UPDATE
    SET message_id = EXCLUDED.message_id, expires_at = EXCLUDED.expires_at;

-- name: claim_release
DELETE FROM conveyor_claims WHERE key = $1 AND message_id = $2::uuid;

-- name: claim_expire
DELETE FROM conveyor_claims WHERE key IN (
    SELECT key FROM conveyor_claims
    WHERE expires_at <= COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2);
