-- conveyor's upkeep of its own tables (storage/postgres/postgres_maintenance.py). PostgreSQL only:
-- SQLite has no dead rows and no partitions (its upkeep is PRAGMAs, sqlite/sqlite_maintenance.py).
-- {table} is filled in by postgres_maintenance.py with one of conveyor_messages_s0..s15
-- (never input): a partition cannot be a bound parameter.

-- name: maintenance_rotation
-- The pointer, the slot it left last, the clock, and the heap bytes of each of the $1 slots
-- (0 after a TRUNCATE until written again).
SELECT r.slot, r.previous, r.advanced_at, conveyor_now_ms(),
       ARRAY(SELECT pg_relation_size(format('conveyor_messages_s%s', s)::regclass)
             FROM generate_series(0, $1::int - 1) AS s ORDER BY s)
FROM conveyor_message_rotation r;

-- name: maintenance_rotation_locked
-- Inside the transaction that empties a slot: the pointer cannot move until it commits, so
-- the slot it empties stays behind the pointer and the slot it moves rows into stays
-- `previous` (never the current one).
SELECT slot, previous FROM conveyor_message_rotation FOR SHARE;

-- name: maintenance_advance
-- The pointer to slot $2 if it is empty and no other node has moved the pointer meanwhile;
-- the slot it leaves ($1) becomes `previous`.
UPDATE conveyor_message_rotation
SET slot = $2, previous = $1, advanced_at = conveyor_now_ms()
WHERE slot = $1
  AND pg_relation_size(format('conveyor_messages_s%s', $2::smallint)::regclass) = 0;

-- name: maintenance_slot_evacuate
-- Rows of a slot behind the pointer moved into the previous one ($1), at most $2: delayed
-- rows (not leased, visible only later), and with $3 every row not under a lease. No one
-- acknowledges these (a lease that ran out may be, and then misses: allowed), and SKIP
-- LOCKED leaves any a receive holds.
WITH moved AS (
    DELETE FROM {table} WHERE id IN (
        SELECT id FROM {table}
        WHERE (NOT leased AND visible_at > conveyor_now_ms() + 1000)
           OR ($3 AND NOT (leased AND visible_at > conveyor_now_ms()))
        LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING *
)
INSERT INTO conveyor_messages (id, queue_id, priority, visible_at, leased, token, receive_count,
                               sent_at, first_received_at, body_kind, body, attributes,
                               group_id, dedup_id, source_queue_id, last_error, sequence, slot)
SELECT id, queue_id, priority, visible_at, leased, token, receive_count, sent_at,
       first_received_at, body_kind, body, attributes, group_id, dedup_id, source_queue_id,
       last_error, sequence, $1
FROM moved;

-- name: maintenance_slot_counts
-- Live and dead rows of one slot, from the statistics (a moment behind).
SELECT pg_stat_get_live_tuples($1::regclass), pg_stat_get_dead_tuples($1::regclass);

-- name: maintenance_try_lock
SELECT pg_try_advisory_xact_lock($1);

-- name: maintenance_retire
-- Announce that slot $2 is about to be emptied: its advisory lock ($1, $2) for this
-- session, had only once no claim holds it shared (claims then leave the slot out;
-- migration 0026).
SELECT pg_try_advisory_lock($1::int, $2::int);

-- name: maintenance_retiring
-- The slots being emptied now (their advisory lock held by a maintenance), the others'
-- locks taken shared to the end of the transaction, as a claim takes them (migration 0026).
SELECT coalesce(array_agg(s), '{}') FROM generate_series(0, $2::int - 1) AS s
WHERE NOT pg_try_advisory_xact_lock_shared($1::int, s);

-- name: maintenance_unretire
SELECT pg_advisory_unlock($1::int, $2::int);

-- name: maintenance_slot_live
-- Live rows, counted no further than the limit (dead ones cost only the reading).
SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT $1) AS live;

-- name: maintenance_slot_move
-- The stragglers of a slot into the previous one ($1), ids, tokens and leases unchanged
-- (a handle's token then names the old slot: message_delete looks further for it).
INSERT INTO conveyor_messages (id, queue_id, priority, visible_at, leased, token, receive_count,
                               sent_at, first_received_at, body_kind, body, attributes,
                               group_id, dedup_id, source_queue_id, last_error, sequence, slot)
SELECT id, queue_id, priority, visible_at, leased, token, receive_count, sent_at,
       first_received_at, body_kind, body, attributes, group_id, dedup_id, source_queue_id,
       last_error, sequence, $1
FROM {table};

-- name: maintenance_vacuum_due
-- Tables ($1) whose dead rows pass both their live rows and a floor ($2); message slots
-- ($3) only while they hold at least $4 live rows. One lookup per table named.
SELECT c.relname FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace
  AND (c.relname = ANY($1::text[])
       OR (c.relname = ANY($3::text[]) AND pg_stat_get_live_tuples(c.oid) >= $4))
  AND pg_stat_get_dead_tuples(c.oid) > greatest($2::bigint, pg_stat_get_live_tuples(c.oid))
ORDER BY pg_stat_get_dead_tuples(c.oid) DESC;

-- name: maintenance_snapshot_hold
-- The oldest snapshot holding back this database's xmin horizon (not this query's own):
-- a transaction, a prepared transaction, or a replication slot (whose xmin is
-- cluster-wide, as is a walsender's). Ordered by how far back it holds, in transactions.
SELECT kind, seconds, pid, application FROM (
    SELECT 'transaction' AS kind, pid, nullif(application_name, '') AS application,
           extract(epoch FROM clock_timestamp() - xact_start)::float8 AS seconds,
           age(backend_xmin) AS behind
    FROM pg_stat_activity
    WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
      AND (datname = current_database() OR backend_type = 'walsender')
    UNION ALL
    SELECT 'prepared transaction', NULL, gid,
           extract(epoch FROM clock_timestamp() - prepared)::float8, age(transaction)
    FROM pg_prepared_xacts WHERE database = current_database()
    UNION ALL
    SELECT 'replication slot', active_pid, slot_name, NULL, age(xmin)
    FROM pg_replication_slots WHERE xmin IS NOT NULL
) held
ORDER BY behind DESC
LIMIT 1;

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
