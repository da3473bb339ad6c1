-- The hot table in rotating slots, so that its space comes back by TRUNCATE instead of VACUUM.
--
-- Why: every message leaves dead entries at the head of the claim index (its row as sent,
-- then as leased), and each claim walks them before it finds a live row. VACUUM removes
-- them, but only when no transaction older than them is open; with an xmin held (a long
-- report, a REPEATABLE READ session) or autovacuum off or asleep (its naptime is a
-- minute), the walk grows with every message sent and the drain collapses (measured: from
-- 2,000/s to 650/s within two minutes of a held xmin, 1,400 buffers read per claim).
-- TRUNCATE takes no notice of snapshots. So rows go into one of four LIST partitions by
-- `slot`: the one conveyor_message_rotation names. conveyor's maintenance
-- (storage/postgres/postgres_maintenance.py) moves that pointer on every 5 s, to the next slot once
-- it is empty; a slot behind the pointer is consumed in order like any messages, its
-- delayed rows are moved forward, and once only a few live rows are left they are moved
-- into the current slot and it is truncated, under a short lock. Claims then walk at most
-- a slot or two of dead entries, whatever vacuum does; a backlog only holds the pointer
-- (new rows stay in the current slot) until it is consumed.
--
-- Statements keep naming conveyor_messages (the partitioned parent), so nodes of the
-- previous version share this table during a rolling upgrade: `slot` has a default.

CREATE TABLE conveyor_message_rotation (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    slot smallint NOT NULL,            -- where new rows go
    advanced_at bigint NOT NULL        -- when the pointer last moved (ms)
) WITH (fillfactor = 50);             -- updated in place (HOT) every few seconds
INSERT INTO conveyor_message_rotation (slot, advanced_at) VALUES (0, conveyor_now_ms());

-- Which slot a row written now goes to.
CREATE FUNCTION conveyor_message_slot() RETURNS smallint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT slot FROM conveyor_message_rotation $$;

ALTER TABLE conveyor_messages RENAME TO conveyor_messages_unsloted;
ALTER INDEX conveyor_messages_pkey RENAME TO conveyor_messages_unsloted_pkey;
ALTER INDEX conveyor_messages_claim RENAME TO conveyor_messages_unsloted_claim;
ALTER INDEX conveyor_messages_source RENAME TO conveyor_messages_unsloted_source;
ALTER INDEX conveyor_messages_fifo RENAME TO conveyor_messages_unsloted_fifo;

CREATE TABLE conveyor_messages (
    id uuid NOT NULL,                 -- UUIDv7: time-ordered, so it is the retention index
    queue_id bigint NOT NULL,
    priority smallint NOT NULL DEFAULT 0,
    visible_at bigint NOT NULL,       -- send time + delay, then the lease expiry
    leased boolean NOT NULL DEFAULT false,
    token bigint NOT NULL DEFAULT 0,  -- changes on every receive: stale handles miss
    receive_count integer NOT NULL DEFAULT 0,
    sent_at bigint NOT NULL,
    first_received_at bigint,
    body_kind smallint NOT NULL,
    body text NOT NULL,
    attributes text,
    group_id text,
    dedup_id text,
    source_queue_id bigint,           -- set while dead-lettered: where redrive returns it
    last_error text,
    sequence bigint,                  -- FIFO queues only: order within a message group
    slot smallint NOT NULL DEFAULT conveyor_message_slot(),
    -- A partitioned table's key must hold the partition key; ids are UUIDv7 made by
    -- conveyor, unique on their own.
    PRIMARY KEY (id, slot)
) PARTITION BY LIST (slot);

-- No autovacuum on the slots: a VACUUM (or ANALYZE) of a slot whose rows are all dead
-- records it as empty (0 pages, 0 rows), and a statement prepared then keeps a plan that
-- reads it by a sequential scan for every row it looks up once the slot fills again
-- (measured: 965 buffers per claim, 16,000 sequential scans of one slot in 45 s).
-- TRUNCATE leaves a slot's size "unknown", which plans as an index lookup. maintenance.py
-- VACUUMs a slot itself when a backlog keeps it from rotating (its rows then live).
CREATE TABLE conveyor_messages_s0 PARTITION OF conveyor_messages FOR VALUES IN (0)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s1 PARTITION OF conveyor_messages FOR VALUES IN (1)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s2 PARTITION OF conveyor_messages FOR VALUES IN (2)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE conveyor_messages_s3 PARTITION OF conveyor_messages FOR VALUES IN (3)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);

CREATE INDEX conveyor_messages_claim
    ON conveyor_messages (queue_id, priority DESC, visible_at, id);
CREATE INDEX conveyor_messages_source ON conveyor_messages (source_queue_id)
    WHERE source_queue_id IS NOT NULL;
CREATE INDEX conveyor_messages_fifo ON conveyor_messages (queue_id, sequence)
    WHERE sequence IS NOT NULL;

INSERT INTO conveyor_messages (id, queue_id, priority, visible_at, leased, token, receive_count,
                               sent_at, first_received_at, body_kind, body, attributes,
                               group_id, dedup_id, source_queue_id, last_error, sequence)
SELECT id, queue_id, priority, visible_at, leased, token, receive_count, sent_at,
       first_received_at, body_kind, body, attributes, group_id, dedup_id, source_queue_id,
       last_error, sequence
FROM conveyor_messages_unsloted;

DROP TABLE conveyor_messages_unsloted;

-- The unlogged table keeps one slot: the same statements run on it (store.py: UNLOGGED).
ALTER TABLE conveyor_messages_unlogged ADD COLUMN slot smallint NOT NULL DEFAULT 0;
