-- conveyor's upkeep of its own tables (storage/postgres/maintenance.py). PostgreSQL only:
-- SQLite has no dead rows and no partitions (its upkeep is PRAGMAs, sqlite/maintenance.py).
-- {table} is filled in by maintenance.py with one of conveyor_messages_s0..s3 (never
-- input): a partition cannot be a bound parameter.

-- name: maintenance_current_slot
SELECT conveyor_message_slot();

-- name: maintenance_try_lock
SELECT pg_try_advisory_xact_lock($1);

-- name: maintenance_slot_used
-- Pages on disk: zero after a TRUNCATE until the slot is written again.
SELECT pg_relation_size($1::regclass) > 0;

-- name: maintenance_slot_live
-- Live rows, counted no further than the limit (dead ones cost only the reading).
SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT $1) AS live;

-- name: maintenance_slot_move
-- The stragglers of a slot into the current one, ids, tokens and leases unchanged.
INSERT INTO conveyor_messages (id, queue_id, priority, visible_at, leased, token, receive_count,
                               sent_at, first_received_at, body_kind, body, attributes,
                               group_id, dedup_id, source_queue_id, last_error, sequence, slot)
SELECT id, queue_id, priority, visible_at, leased, token, receive_count, sent_at,
       first_received_at, body_kind, body, attributes, group_id, dedup_id, source_queue_id,
       last_error, sequence, $1
FROM {table};

-- name: maintenance_vacuum_due
-- Tables whose dead rows pass both their live rows and a floor.
SELECT relname FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND relname = ANY($1::text[])
  AND n_dead_tup > greatest($2::bigint, n_live_tup)
ORDER BY n_dead_tup DESC;

-- name: maintenance_table_health
-- Rows and bytes by table (TOAST and indexes included); the slots count as their parent.
SELECT CASE WHEN s.relname ~ '^conveyor_messages_s[0-9]+$' THEN 'conveyor_messages'
            ELSE s.relname END AS name,
       sum(s.n_live_tup)::bigint, sum(s.n_dead_tup)::bigint,
       sum(pg_total_relation_size(s.relid))::bigint
FROM pg_stat_user_tables s
WHERE s.schemaname = current_schema() AND s.relname LIKE 'conveyor\_%'
  AND s.relname <> 'conveyor_migrations'
GROUP BY 1 ORDER BY 1;
