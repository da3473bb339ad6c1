-- Tracked jobs and cron ticks survive a kill at the wrong moment.
--
-- 1. A cron tick's claim is a lease (`pending`): a scheduler killed between claiming a
--    tick and sending its job left the tick claimed for a week and never sent. A lease
--    claim (jobs.sql: cron_lease) sets pending; the send clears it (cron_sent); a pending
--    claim older than the lease is taken over by the next scheduler that asks. Rows of
--    older nodes (plain cron_claim) are not pending: final, as before. The partial index
--    finds a schedule's pending ticks without walking its week of claims.
-- 2. conveyor_jobs.run_started: the start of the run the status reports (NULL: none), so
--    a late write of an older run (a frozen worker's, after a retry reopened the job) is
--    told from the current run's own writes (jobs.sql: job_put_many).
-- 3. The claim leaves an over-received tracked job (status queued, running or retrying)
--    in place with a NULL token, as 0024 does for flow nodes: a worker killed in the last
--    attempt left the job `running` for good when the claim moved its message to the
--    dead-letter queue. The storage now moves it and records it dead in one transaction
--    (postgres_flows.py). One more probe, by primary key, only for rows over the limit.
--    Replaced in place: an older node already moves the rows a claim returns with a NULL
--    token (it records no dead status for them, as before).

ALTER TABLE conveyor_cron_ticks ADD COLUMN pending boolean NOT NULL DEFAULT false;
CREATE INDEX conveyor_cron_ticks_pending ON conveyor_cron_ticks (schedule, claimed_at)
    WHERE pending;

ALTER TABLE conveyor_jobs ADD COLUMN run_started bigint;

DO $migration$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['conveyor_messages', 'conveyor_messages_unlogged'] LOOP
        EXECUTE format($create$
CREATE OR REPLACE FUNCTION %1$s_claim_v2(p_queue bigint, p_limit bigint, p_visibility_ms bigint,
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
          -- A flow node stays (migration 0024); probed only for the rows over the
          -- limit, so a claim of plain messages never looks.
          AND NOT EXISTS (SELECT 1 FROM conveyor_flow_nodes n
                          WHERE n.job_id = m.id AND n.state IN ('queued', 'waiting'))
          -- So does a tracked job not yet ended (migration 0029): its status must say
          -- dead in the transaction that moves it.
          AND NOT EXISTS (SELECT 1 FROM conveyor_jobs j
                          WHERE j.id = m.id::text
                            AND j.status IN ('queued', 'running', 'retrying'))
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

CREATE OR REPLACE FUNCTION conveyor_messages_claim_except(
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
          -- So does a tracked job not yet ended (migration 0029): its status must say
          -- dead in the transaction that moves it.
          AND NOT EXISTS (SELECT 1 FROM conveyor_jobs j
                          WHERE j.id = m.id::text
                            AND j.status IN ('queued', 'running', 'retrying'))
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
