-- A receive and an acknowledgement in one round trip each, as functions that carry their
-- planner pins.
--
-- Why: the claim and the delete ran as BEGIN + SET LOCAL (the pins; postgres_storage.py)
-- + the statement + COMMIT: three round trips each, six per batch where a hand-written
-- drain needs two. A function's SET clause applies the pins while its statement is planned
-- and executed and restores them when it returns, so nothing outlives the call (pooler-safe,
-- no session state), and PL/pgSQL keeps the statement's plan for the session as a prepared
-- statement would. synchronous_commit cannot be a SET clause (it would be restored before
-- the commit it is for): set_config(..., true) inside the body lasts to the end of the
-- caller's transaction, the single statement's own when it runs alone.
--
-- The statements are queries.sql's former message_claim(_skip) and message_delete, one
-- copy for each messages table (conveyor_messages, conveyor_messages_unlogged): the
-- storage calls `<table>_claim` and `<table>_delete`. The skip list of message_claim_skip
-- is a parameter ('{}' for none: `<> ALL` of an empty array holds for every row).
-- Additive: older nodes keep running their own statements on the same tables.

DO $migration$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['conveyor_messages', 'conveyor_messages_unlogged'] LOOP
        EXECUTE format($create$
CREATE FUNCTION %1$s_claim(p_queue bigint, p_limit bigint, p_visibility_ms bigint,
                           p_max_receives integer, p_dead_letter bigint, p_now bigint,
                           p_skip_groups text[])
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
AS $body$
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
        FROM %1$s m
        WHERE m.queue_id = p_queue
          AND m.visible_at <= (SELECT t.now FROM t)
          AND (m.group_id IS NULL OR m.group_id <> ALL (p_skip_groups))
          AND NOT EXISTS (SELECT 1 FROM conveyor_queues q WHERE q.id = p_queue AND q.paused)
        ORDER BY m.priority DESC, m.visible_at, m.id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ),
    dead AS (
        UPDATE %1$s m
        SET queue_id = p_dead_letter, source_queue_id = m.queue_id,
            visible_at = (SELECT t.now FROM t), leased = false
        FROM cand WHERE m.id = cand.id AND m.slot = cand.slot
          AND cand.receive_count >= p_max_receives
        RETURNING m.id
    )
    UPDATE %1$s m
    SET visible_at = (SELECT t.now FROM t) + p_visibility_ms, leased = true,
        token = ((random() * 35184372088831)::bigint << 8) | m.slot,
        receive_count = m.receive_count + 1,
        first_received_at = COALESCE(m.first_received_at, (SELECT t.now FROM t))
    FROM cand WHERE m.id = cand.id AND m.slot = cand.slot
      AND cand.receive_count < p_max_receives
    RETURNING m.id, m.token, m.receive_count, m.sent_at, m.first_received_at,
              m.visible_at, m.body_kind, m.body, m.attributes, m.priority, m.group_id,
              m.dedup_id, m.last_error, m.sequence;
END
$body$
$create$, tbl);

        EXECUTE format($create$
CREATE FUNCTION %1$s_delete(p_queue bigint, p_ids uuid[], p_tokens bigint[],
                            p_slots smallint[])
    RETURNS SETOF bigint
    LANGUAGE plpgsql VOLATILE
    -- p_slots (the slots the tokens name) prunes the other partitions when the statement
    -- starts, and `id = ANY` makes each remaining one a single walk of its primary key
    -- for the batch, which the ids then meet in a hash. A join probing the slots per id
    -- instead flipped, with sixteen slots and no statistics on them, into walking every
    -- row of the queue for each id (measured: 5M rows compared, 8 s, to delete 1,000);
    -- `queue_id + 0` keeps the claim index out.
    SET enable_seqscan = off SET enable_nestloop = off SET enable_mergejoin = off
AS $body$
BEGIN
    -- A delete lost in a server crash only means a redelivery (at-least-once).
    PERFORM set_config('synchronous_commit', 'off', true);
    -- Positions in the arrays (1-based): cheaper to read back than ids.
    RETURN QUERY
    DELETE FROM %1$s m
    USING unnest(p_ids, p_tokens) WITH ORDINALITY AS d(id, token, ord)
    WHERE m.id = ANY (p_ids) AND m.slot = ANY (p_slots) AND m.queue_id + 0 = p_queue
      AND m.id = d.id AND m.token = d.token
    RETURNING d.ord;
END
$body$
$create$, tbl);
    END LOOP;
END
$migration$;
