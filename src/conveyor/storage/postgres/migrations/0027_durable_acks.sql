-- An acknowledged delete is durable again: 0022 made the delete function commit
-- asynchronously (as the claim does), so a server crash right after a delete answered `ok`
-- could bring the message back; tests/faults/test_postgres_outage.py caught 20 such
-- messages in one run. A lease lost in a crash only means an earlier redelivery, which
-- at-least-once allows; an acknowledged delete coming back is a duplicate the client was
-- told could not happen. The same function as 0022's without the set_config line: the
-- statement's own transaction now commits with the server's synchronous_commit.

DO $migration$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['conveyor_messages', 'conveyor_messages_unlogged'] LOOP
        EXECUTE format($create$
CREATE OR REPLACE FUNCTION %1$s_delete(p_queue bigint, p_ids uuid[], p_tokens bigint[],
                                       p_slots smallint[])
    RETURNS SETOF bigint
    LANGUAGE plpgsql VOLATILE
    -- The planner pins of 0022 (why: there).
    SET enable_seqscan = off SET enable_nestloop = off SET enable_mergejoin = off
AS $body$
BEGIN
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
