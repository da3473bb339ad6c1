-- A slot's TRUNCATE no longer holds up the claims (postgres_maintenance.py: _retire).
--
-- Why: every claim read and locked all sixteen slots (its generic plan locks every
-- partition before pruning), so while the maintenance held a slot's ACCESS EXCLUSIVE lock
-- to TRUNCATE it, every claim waited. TRUNCATE rebuilds the slot's four indexes and its
-- TOAST index, and PostgreSQL 15 fsyncs each new index file before the statement ends
-- (DataFileImmediateSync): a few ms on a quiet disk, but whatever the disk makes it while
-- a checkpoint or another process floods it with writes. The soak saw claims waiting on the
-- slot's lock behind that fsync (pg_stat_activity: "Lock relation" behind "IO
-- DataFileImmediateSync"), and no receive in the meantime.
--
-- Now the maintenance announces the slot it is about to empty by holding the session-level
-- advisory lock (RETIRING, slot), taken only once no claim holds it shared; every claim
-- first tries each slot's advisory lock shared (held to the end of its transaction), and
-- leaves out the slots whose lock it cannot have. So a claim either started before the
-- announcement and holds the lock shared (the maintenance waits for it, NOWAIT, as for the
-- table lock), or started after and neither reads nor locks the slot. No row is written
-- (nothing to bloat under a held xmin), and a crashed node's announcement ends with its
-- session. RETIRING is 0x636F6E72 (postgres_maintenance.py).
--
-- `<table>_claim_v3` is the claim the storage calls: 0024's `<table>_claim_v2` when no
-- slot is being emptied, else conveyor_messages_claim_except, the same statement with the
-- retiring slots pruned at planning. The unlogged table has no slots to empty: its v3 is
-- its v2. Additive: older nodes keep calling v2 (and wait for a TRUNCATE, as before).

CREATE FUNCTION conveyor_messages_claim_except(
    p_queue bigint, p_limit bigint, p_visibility_ms bigint, p_max_receives integer,
    p_dead_letter bigint, p_now bigint, p_skip_groups text[], p_except smallint[])
    RETURNS TABLE (id uuid, token bigint, receive_count integer, sent_at bigint,
                   first_received_at bigint, visible_at bigint, body_kind smallint,
                   body text, attributes text, priority smallint, group_id text,
                   dedup_id text, last_error text, sequence bigint)
    LANGUAGE plpgsql VOLATILE
    -- Without table statistics (a new or just-filled table) the planner would sort every
    -- visible row of the queue on each claim instead of walking the claim index (a 2-4x
    -- swing in drain speed): with sorting and sequential scans priced out, the index walk
    -- is the only plan left. The lease joins each chosen row back by its slot as well as
    -- its id, so it looks in one slot (partition), by its key.
    SET enable_sort = off SET enable_seqscan = off
    -- Planned afresh on each call, with p_except known: the slots in it are pruned when the
    -- statement is planned, so they are neither read nor locked (a generic plan would lock
    -- every slot before pruning). Only claims made while a slot is being emptied come here.
    SET plan_cache_mode = force_custom_plan
AS $except$
#variable_conflict use_column
BEGIN
    -- A lease lost in a server crash only means an earlier redelivery (at-least-once).
    PERFORM set_config('synchronous_commit', 'off', true);
    -- Pick the head of the queue (skipping rows other consumers hold, and the rows of the
    -- groups in p_skip_groups), move rows already received p_max_receives times to the
    -- dead-letter queue, lease the rest. The token's low byte is the row's slot (a random
    -- 45-bit number above it): the receipt handle names the partition to look in.
    RETURN QUERY
    WITH t AS (SELECT COALESCE(p_now, conveyor_now_ms()) AS now),
    cand AS (
        SELECT m.id, m.slot, m.receive_count
        FROM conveyor_messages m
        WHERE m.queue_id = p_queue AND m.slot <> ALL (p_except)
          AND m.visible_at <= (SELECT t.now FROM t)
          AND (m.group_id IS NULL OR m.group_id <> ALL (p_skip_groups))
          AND NOT EXISTS (SELECT 1 FROM conveyor_queues q WHERE q.id = p_queue AND q.paused)
        ORDER BY m.priority DESC, m.visible_at, m.id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ),
    dead AS (
        UPDATE conveyor_messages m
        SET queue_id = p_dead_letter, source_queue_id = m.queue_id,
            visible_at = (SELECT t.now FROM t), leased = false
        FROM cand WHERE m.id = cand.id AND m.slot = cand.slot
          AND m.slot <> ALL (p_except)
          AND cand.receive_count >= p_max_receives
          -- A flow node stays (migration 0024); probed only for the rows
          -- over the limit, so a claim of plain messages never looks.
          AND NOT EXISTS (SELECT 1 FROM conveyor_flow_nodes n
                          WHERE n.job_id = m.id AND n.state IN ('queued', 'waiting'))
        RETURNING m.id
    ),
    leased AS (
        UPDATE conveyor_messages m
        SET visible_at = (SELECT t.now FROM t) + p_visibility_ms, leased = true,
            token = ((random() * 35184372088831)::bigint << 8) | m.slot,
            receive_count = m.receive_count + 1,
            first_received_at = COALESCE(m.first_received_at, (SELECT t.now FROM t))
        FROM cand WHERE m.id = cand.id AND m.slot = cand.slot
          AND m.slot <> ALL (p_except)
          AND cand.receive_count < p_max_receives
        RETURNING m.id, m.token, m.receive_count, m.sent_at, m.first_received_at,
                  m.visible_at, m.body_kind, m.body, m.attributes, m.priority, m.group_id,
                  m.dedup_id, m.last_error, m.sequence
    )
    SELECT * FROM leased
    UNION ALL
    -- The over-received flow nodes left in place, marked by a NULL token (a lease
    -- always has one): the storage moves them and records their failed ends next.
    SELECT c.id, NULL::bigint, NULL::integer, NULL::bigint, NULL::bigint, NULL::bigint,
           NULL::smallint, NULL::text, NULL::text, NULL::smallint, NULL::text, NULL::text,
           NULL::text, NULL::bigint
    FROM cand c
    WHERE c.receive_count >= p_max_receives AND c.id NOT IN (SELECT d.id FROM dead d);
END
$except$;

CREATE FUNCTION conveyor_messages_claim_v3(
    p_queue bigint, p_limit bigint, p_visibility_ms bigint, p_max_receives integer,
    p_dead_letter bigint, p_now bigint, p_skip_groups text[])
    RETURNS TABLE (id uuid, token bigint, receive_count integer, sent_at bigint,
                   first_received_at bigint, visible_at bigint, body_kind smallint,
                   body text, attributes text, priority smallint, group_id text,
                   dedup_id text, last_error text, sequence bigint)
    LANGUAGE plpgsql VOLATILE
AS $v3$
DECLARE
    v_except smallint[];
BEGIN
    -- Slots being emptied: those whose advisory lock the maintenance holds. The others'
    -- locks are held shared to the end of the transaction, so that the maintenance does
    -- not begin to empty one while this claim may still read it.
    SELECT array_agg(s) INTO v_except FROM generate_series(0, 15) AS s
    WHERE NOT pg_try_advisory_xact_lock_shared(1668247154, s);
    IF v_except IS NULL THEN
        RETURN QUERY SELECT * FROM conveyor_messages_claim_v2(
            p_queue, p_limit, p_visibility_ms, p_max_receives, p_dead_letter, p_now,
            p_skip_groups);
    ELSE
        RETURN QUERY SELECT * FROM conveyor_messages_claim_except(
            p_queue, p_limit, p_visibility_ms, p_max_receives, p_dead_letter, p_now,
            p_skip_groups, v_except);
    END IF;
END
$v3$;

-- One slot, never emptied: the claim as before.
CREATE FUNCTION conveyor_messages_unlogged_claim_v3(
    p_queue bigint, p_limit bigint, p_visibility_ms bigint, p_max_receives integer,
    p_dead_letter bigint, p_now bigint, p_skip_groups text[])
    RETURNS TABLE (id uuid, token bigint, receive_count integer, sent_at bigint,
                   first_received_at bigint, visible_at bigint, body_kind smallint,
                   body text, attributes text, priority smallint, group_id text,
                   dedup_id text, last_error text, sequence bigint)
    LANGUAGE sql VOLATILE
AS $v3$
    SELECT * FROM conveyor_messages_unlogged_claim_v2(
        p_queue, p_limit, p_visibility_ms, p_max_receives, p_dead_letter, p_now,
        p_skip_groups);
$v3$;
