-- SQLite dialect. Named blocks; the same names exist in ../postgres/queries.sql.
-- Parameters are named (:x). Every statement runs inside BEGIN IMMEDIATE when it writes:
-- SQLite has one writer, so claims need no SKIP LOCKED.

-- name: queue_insert
INSERT INTO conveyor_queues (region, name, attributes, paused, created_at, updated_at)
VALUES (:region, :name, :attributes, :paused, :now, :now)
ON CONFLICT (region, name) DO NOTHING
RETURNING id, region, name, attributes, created_at, updated_at;

-- name: queue_get
SELECT id, region, name, attributes, created_at, updated_at
FROM conveyor_queues WHERE region = :region AND name = :name;

-- name: queue_get_by_id
SELECT id, region, name, attributes, created_at, updated_at
FROM conveyor_queues WHERE id = :id;

-- name: queue_regions
SELECT DISTINCT region FROM conveyor_queues ORDER BY region;

-- name: queue_catalog_stamp
-- Changes when a queue of the region is created, changed or deleted: lists kept in memory
-- (the dashboard's) re-read the queues only then. One pass over the queues table, no rows.
SELECT count(*), COALESCE(max(updated_at), 0) FROM conveyor_queues WHERE region = :region;

-- name: queue_list
SELECT id, region, name, attributes, created_at, updated_at
FROM conveyor_queues
WHERE region = :region AND substr(name, 1, length(:prefix)) = :prefix AND name > :after
ORDER BY name LIMIT :limit;

-- name: queue_update
UPDATE conveyor_queues SET attributes = :attributes, paused = :paused, updated_at = :now
WHERE id = :id
RETURNING id, region, name, attributes, created_at, updated_at;

-- name: queue_delete
DELETE FROM conveyor_queues WHERE id = :id;

-- name: queue_delete_messages
DELETE FROM conveyor_messages WHERE queue_id = :id;

-- name: queue_delete_dedup
DELETE FROM conveyor_dedup WHERE queue_id = :id;

-- name: queue_stats
SELECT coalesce(sum(visible_at <= :now), 0),
       coalesce(sum(visible_at > :now AND leased), 0),
       coalesce(sum(visible_at > :now AND NOT leased), 0),
       min(sent_at)
FROM conveyor_messages WHERE queue_id = :id;

-- name: queue_dead_letters
-- Only in SQLite: PostgreSQL's queue_stats counts the dead letters in the same statement;
-- here they are a second statement in the same read transaction.
SELECT count(*) FROM conveyor_messages WHERE source_queue_id = :id;

-- name: queue_stats_all
SELECT m.queue_id,
       sum(m.visible_at <= :now),
       sum(m.visible_at > :now AND m.leased),
       sum(m.visible_at > :now AND NOT m.leased),
       min(m.sent_at)
FROM conveyor_messages m JOIN conveyor_queues q ON q.id = m.queue_id
WHERE q.region = :region
GROUP BY m.queue_id;

-- name: queue_dead_letters_all
SELECT m.source_queue_id, count(*)
FROM conveyor_messages m JOIN conveyor_queues q ON q.id = m.source_queue_id
WHERE q.region = :region AND m.source_queue_id IS NOT NULL
GROUP BY m.source_queue_id;

-- name: dedup_claim
-- Wins the deduplication id unless a live entry holds it; the loser reads the winner's id.
INSERT INTO conveyor_dedup (queue_id, dedup_id, message_id, expires_at)
VALUES (:queue_id, :dedup_id, :message_id, :expires_at)
ON CONFLICT (queue_id, dedup_id) DO UPDATE
    SET message_id = excluded.message_id, expires_at = excluded.expires_at
    WHERE conveyor_dedup.expires_at <= :now;

-- name: dedup_get
SELECT message_id FROM conveyor_dedup WHERE queue_id = :queue_id AND dedup_id = :dedup_id;

-- name: message_insert
INSERT INTO conveyor_messages (id, queue_id, priority, visible_at, sent_at, body_kind, body,
                               attributes, group_id, dedup_id, sequence)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: counter_take
-- Only in SQLite: FIFO sequence numbers from a counter row, taken inside the send's
-- BEGIN IMMEDIATE (one writer: commit order is sequence order). PostgreSQL draws them
-- from a sequence in the insert itself (message_insert_fifo), under fifo_lock.
-- Reserves `n` numbers; the last one reserved is returned.
INSERT INTO conveyor_counters (name, value) VALUES (:name, :n)
ON CONFLICT (name) DO UPDATE SET value = value + :n
RETURNING value;

-- name: message_dead_letter
-- Only in SQLite: a statement of its own before message_claim, in the same transaction.
-- PostgreSQL's message_claim dead-letters in the same statement (a data-modifying CTE),
-- one round trip on the hot path.
-- Among the rows the claim is about to take, those already received max_receive_count
-- times go to the dead-letter queue instead (one statement, same transaction).
UPDATE conveyor_messages
SET queue_id = :dlq_id, source_queue_id = queue_id, visible_at = :now, leased = 0
WHERE seq IN (
    SELECT seq FROM conveyor_messages
    WHERE queue_id = :queue_id AND visible_at <= :now
    ORDER BY priority DESC, visible_at LIMIT :limit)
  AND receive_count >= :max_receive_count
RETURNING id;  -- a flow node among them has its failed end recorded (sqlite_flows.py)

-- name: message_ready
-- One seek per priority (0-9) on the claim index: the in-flight and delayed rows that
-- sort after the visible ones of each priority are never walked.
SELECT EXISTS (
    SELECT 1 FROM conveyor_messages
    WHERE queue_id = :queue_id AND priority IN (9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
      AND visible_at <= :now
) AND NOT EXISTS (SELECT 1 FROM conveyor_queues WHERE id = :queue_id AND paused);

-- name: message_claim
UPDATE conveyor_messages
SET visible_at = :now + :visibility_ms, leased = 1, token = random(),
    receive_count = receive_count + 1, first_received_at = coalesce(first_received_at, :now)
WHERE seq IN (
    SELECT seq FROM conveyor_messages
    WHERE queue_id = :queue_id AND visible_at <= :now
      AND NOT EXISTS (SELECT 1 FROM conveyor_queues WHERE id = :queue_id AND paused)
    ORDER BY priority DESC, visible_at LIMIT :limit)
RETURNING id, token, receive_count, sent_at, first_received_at, visible_at, body_kind,
          body, attributes, priority, group_id, dedup_id, last_error, sequence, seq;

-- name: message_claim_skip
-- message_claim passing over the rows of some message groups (:skip, a JSON array): a
-- worker's per-key limited jobs whose keys are at their limit (conveyor.worker.keys).
UPDATE conveyor_messages
SET visible_at = :now + :visibility_ms, leased = 1, token = random(),
    receive_count = receive_count + 1, first_received_at = coalesce(first_received_at, :now)
WHERE seq IN (
    SELECT seq FROM conveyor_messages
    WHERE queue_id = :queue_id AND visible_at <= :now
      AND (group_id IS NULL OR group_id NOT IN (SELECT value FROM json_each(:skip)))
      AND NOT EXISTS (SELECT 1 FROM conveyor_queues WHERE id = :queue_id AND paused)
    ORDER BY priority DESC, visible_at LIMIT :limit)
RETURNING id, token, receive_count, sent_at, first_received_at, visible_at, body_kind,
          body, attributes, priority, group_id, dedup_id, last_error, sequence, seq;

-- name: fifo_gates
-- Per group, the first sequence that must wait: its earliest invisible message.
SELECT group_id, min(sequence) FROM conveyor_messages
WHERE queue_id = :queue_id AND visible_at > :now AND sequence IS NOT NULL
GROUP BY group_id;

-- name: fifo_visible
SELECT id, group_id, sequence, receive_count FROM conveyor_messages
WHERE queue_id = :queue_id AND sequence > :after AND visible_at <= :now
  AND sequence IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM conveyor_queues WHERE id = :queue_id AND paused)
ORDER BY sequence LIMIT :limit;

-- name: fifo_dead_letter
UPDATE conveyor_messages
SET queue_id = :dlq_id, source_queue_id = queue_id, visible_at = :now, leased = 0
WHERE id = :id;

-- name: fifo_claim
UPDATE conveyor_messages
SET visible_at = :now + :visibility_ms, leased = 1, token = random(),
    receive_count = receive_count + 1, first_received_at = coalesce(first_received_at, :now)
WHERE id = :id
RETURNING id, token, receive_count, sent_at, first_received_at, visible_at, body_kind,
          body, attributes, priority, group_id, dedup_id, last_error, sequence, seq;

-- name: message_delete
DELETE FROM conveyor_messages WHERE id = ? AND queue_id = ? AND token = ?;

-- name: message_delete_leased
-- By message id, whoever holds the lease, while one is held (the WQ API's PATCH).
-- With a token, only under that lease (a FIFO queue's DeleteMessage).
DELETE FROM conveyor_messages WHERE id = ? AND queue_id = ? AND leased AND visible_at > ?
    AND (? IS NULL OR token = ?);

-- name: message_change_visibility
UPDATE conveyor_messages SET visible_at = ? + ?, leased = (? > 0)
WHERE id = ? AND queue_id = ? AND token = ? AND leased;

-- name: message_retry
-- A new token ends the lease: the old handle can no longer delete or extend it. With a
-- dead-letter queue it moves there at once, its source kept for redrive (the right-hand
-- sides see the row as it was, so source_queue_id takes the old queue_id).
UPDATE conveyor_messages
SET visible_at = :now + :delay_ms, leased = 0, token = random(), last_error = :error,
    receive_count = max(0, receive_count - :refund),
    queue_id = coalesce(:dlq_id, queue_id),
    source_queue_id = CASE WHEN :dlq_id IS NULL THEN source_queue_id ELSE queue_id END
WHERE id = :id AND queue_id = :queue_id AND token = :token AND leased;

-- name: message_peek
SELECT id, body_kind, body, attributes, receive_count, sent_at, visible_at, priority,
       group_id, dedup_id, last_error, source_queue_id
FROM conveyor_messages WHERE queue_id = :queue_id AND id > :after ORDER BY id LIMIT :limit;

-- name: message_move
UPDATE conveyor_messages
SET queue_id = coalesce(:dest_id, source_queue_id), source_queue_id = NULL,
    receive_count = 0, first_received_at = NULL, visible_at = :now, leased = 0,
    token = random()
WHERE seq IN (
    SELECT seq FROM conveyor_messages
    WHERE queue_id = :source_id AND visible_at <= :now
      AND (:dest_id IS NOT NULL
           OR source_queue_id IN (SELECT id FROM conveyor_queues))
    ORDER BY id LIMIT :limit);

-- name: message_move_ids
-- One message by id out of a dead-letter queue, as message_move does; one in flight
-- stays. Run once per id inside one transaction. A job's retry (broker.jobs).
UPDATE conveyor_messages
SET queue_id = :dest_id, source_queue_id = NULL, receive_count = 0,
    first_received_at = NULL, visible_at = :now, leased = 0, token = random()
WHERE id = :id AND queue_id = :source_id AND visible_at <= :now;

-- name: message_delete_ids
-- One message by id unless in flight (run once per id in one transaction): a deleted
-- job's dead-letter message.
DELETE FROM conveyor_messages WHERE id = :id AND queue_id = :queue_id AND visible_at <= :now;

-- name: message_delete_queued
-- One message by id unless in flight (leased, lease not lapsed), run once per id in one
-- transaction: a cancelled job that is waiting, delayed or between retries never runs.
DELETE FROM conveyor_messages WHERE id = :id AND queue_id = :queue_id
  AND (NOT leased OR visible_at <= :now);

-- name: message_count_movable
SELECT count(*) FROM conveyor_messages
WHERE queue_id = :source_id AND visible_at <= :now
  AND (:dest_id IS NOT NULL OR source_queue_id IN (SELECT id FROM conveyor_queues));

-- name: message_expire
DELETE FROM conveyor_messages WHERE seq IN (
    SELECT seq FROM conveyor_messages WHERE id < :before_id AND queue_id = :queue_id
    LIMIT :limit);

-- name: dedup_expire
DELETE FROM conveyor_dedup WHERE (queue_id, dedup_id) IN (
        SELECT queue_id, dedup_id FROM conveyor_dedup WHERE expires_at <= :now LIMIT :limit);

-- name: move_task_insert
INSERT INTO conveyor_move_tasks (id, source_queue_id, status, data, started_at)
VALUES (:id, :source_queue_id, :status, :data, :started_at);

-- name: move_task_update
UPDATE conveyor_move_tasks SET status = :status, data = :data
WHERE id = :id AND status = 'running';

-- name: move_task_get
SELECT data FROM conveyor_move_tasks WHERE id = :id;

-- name: move_task_list
SELECT data FROM conveyor_move_tasks WHERE source_queue_id = :source_queue_id
ORDER BY started_at DESC LIMIT 100;

-- name: signal_bump
INSERT INTO conveyor_signals (queue_id, seq) VALUES (:queue_id, 1)
ON CONFLICT (queue_id) DO UPDATE SET seq = seq + 1;

-- name: signal_all
-- Only in SQLite: other processes' wake-ups are read by polling this small table when
-- PRAGMA data_version moves. PostgreSQL delivers them by LISTEN/NOTIFY (signal_bump).
SELECT queue_id, seq FROM conveyor_signals;

-- name: claim_take
-- Unique messages: wins the key unless a live claim holds it (see storage/claims.py).
INSERT INTO conveyor_claims (key, message_id, expires_at)
VALUES (:key, :message_id, :expires_at)
ON CONFLICT (key) DO UPDATE
    SET message_id = excluded.message_id, expires_at = excluded.expires_at
    WHERE conveyor_claims.expires_at <= :now;

-- name: claim_get
SELECT message_id FROM conveyor_claims WHERE key = :key;

-- name: claim_replace
-- Debounce: the held message takes the new one's content and due time, but only while it
-- still waits (delayed, never received); one that is due or running is left alone.
UPDATE conveyor_messages
SET body_kind = :kind, body = :body, attributes = :attributes, priority = :priority,
    visible_at = :visible_at
WHERE id = (SELECT message_id FROM conveyor_claims WHERE key = :key AND expires_at > :now)
  AND queue_id = :queue_id AND leased = 0 AND receive_count = 0 AND visible_at > :now
RETURNING id;

-- name: claim_put
INSERT INTO conveyor_claims (key, message_id, expires_at)
VALUES (:key, :message_id, :expires_at)
ON CONFLICT (key) DO UPDATE
    SET message_id = excluded.message_id, expires_at = excluded.expires_at;

-- name: claim_release
DELETE FROM conveyor_claims WHERE key = :key AND message_id = :message_id;

-- name: claim_expire
DELETE FROM conveyor_claims WHERE key IN (
        SELECT key FROM conveyor_claims WHERE expires_at <= :now LIMIT :limit);
