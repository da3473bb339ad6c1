-- A claim that leaves an over-received flow node where it is, for the storage to move
-- to the dead-letter queue in the transaction that records the node's failed end.
--
-- Why: a flow job whose worker dies on every attempt (kill -9) is moved to the dead-letter
-- queue by the claim (maxReceiveCount) with no worker to record its end, so the steps
-- waiting for it waited until the flow expired. The claim is one statement outside any
-- transaction (0022), so it cannot record the end itself (logic in Python,
-- storage.flow_steps): instead `<table>_claim_v2` is 0022's claim whose dead-letter step
-- passes over a row that is a flow node not yet ended (one probe of the flow nodes' job_id
-- index, only for the rows over the limit: plain claims never look) and returns it with a
-- NULL token. postgres_flows.py then moves it and records its end in one transaction; if
-- that fails the row stays over the limit, and the next claim returns it again.
-- Additive: 0022's functions stay for older nodes (which dead-letter flow nodes silently,
-- as before).

DO $migration$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['conveyor_messages', 'conveyor_messages_unlogged'] LOOP
        EXECUTE format($create$
CREATE FUNCTION %1$s_claim_v2(p_queue bigint, p_limit bigint, p_visibility_ms bigint,
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
          -- A flow node stays (see the top of this file); probed only for the rows
          -- over the limit, so a claim of plain messages never looks.
          AND NOT EXISTS (SELECT 1 FROM conveyor_flow_nodes n
                          WHERE n.job_id = m.id AND n.state IN ('queued', 'waiting'))
        RETURNING m.id
    ),
    leased AS (
        UPDATE %1$s m
        SET visible_at = (SELECT t.now FROM t) + p_visibility_ms, leased = true,
            token = ((random() * 35184372088831)::bigint << 8) | m.slot,
            receive_count = m.receive_count + 1,
            first_received_at = COALESCE(m.first_received_at, (SELECT t.now FROM t))
        FROM cand WHERE m.id = cand.id AND m.slot = cand.slot
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
$body$
$create$, tbl);

    END LOOP;
END
$migration$;
