-- The delivery view without two event rows per notification (issue 17): the ledger row
-- itself now stands for its made state and its current state, so a notification that is
-- queued, sent once and never touched again writes no event row at all (0020 wrote two:
-- the queued state at `begin`, the outcome at `finish`, about half of the ledger's WAL).
-- Event rows keep only what the row's next values overwrite and no column keeps: a state
-- left for another (a retry's outcome when the next attempt begins, a skip's first
-- reason...), an attempt left in doubt by a crash. The reader (delivery_events.sql,
-- delivery_event_list) merges the row's two states with them; what they mean is still
-- read once, in conveyor.timeline. The same columns and rules as SQLite's 0025.
--
-- made_status, made_at: the status and time a put made the row with (null when `begin`
--   made it, or for rows made before this migration: their events hold that state);
-- started_at: when the attempt whose outcome the row holds was handed to the provider
--   (null when the outcome did not follow a `sending`), set by `finish`.
-- Nullable without a default: adding them rewrites nothing.
ALTER TABLE conveyor_deliveries ADD COLUMN made_status text, ADD COLUMN made_at bigint,
    ADD COLUMN started_at bigint;

DROP TRIGGER conveyor_delivery_events_update ON conveyor_deliveries;

-- Rows made before: their current state's event (0020 wrote one per outcome) already holds
-- the hand-over time; the row now answers for that state, so it takes it.
UPDATE conveyor_deliveries d SET started_at = e.started_at
FROM conveyor_delivery_events e
WHERE e.delivery_id = d.id AND e.attempt = d.attempts AND e.status = d.status
  AND e.started_at IS NOT NULL;

-- A state is kept as an event when its row leaves it, unless the row still tells it: its
-- made state (unchanged since the put), a state the new values replace under the same
-- (attempt, status) key (0020 replaced that event too), or `sending` ending in an outcome
-- (the outcome's started_at). An attempt still `sending` when the next begins was left in
-- doubt: kept, as 0020 did. Counts as in 0020, in key order.
CREATE OR REPLACE FUNCTION conveyor_delivery_events_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH ch AS (
        SELECT o.id, n.channel, o.status AS os, o.attempts AS oa, o.updated_at AS ou,
               o.error AS oe, o.provider_id AS op, o.started_at AS ost,
               o.made_status IS NOT DISTINCT FROM o.status AND o.attempts = 0
               AND o.made_at = o.updated_at AND o.error IS NULL AS made,
               n.status AS ns, n.attempts AS na, n.updated_at AS nu
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE n.status IS DISTINCT FROM o.status OR n.attempts IS DISTINCT FROM o.attempts
              OR n.error IS DISTINCT FROM o.error
    ), ev AS (
        INSERT INTO conveyor_delivery_events AS e
        SELECT id, oa, os, ou, ost, left(oe, 500),
               CASE WHEN os = 'sent' THEN left(op, 200) END
        FROM ch
        WHERE os <> 'sending' AND NOT (na = oa AND ns = os) AND NOT made
        UNION ALL
        SELECT id, oa, 'sending', ou, NULL, NULL, NULL FROM ch
        WHERE os = 'sending' AND ns = 'sending'
        ON CONFLICT (delivery_id, attempt, status) DO UPDATE SET
            at = EXCLUDED.at, started_at = EXCLUDED.started_at, detail = EXCLUDED.detail,
            provider_id = EXCLUDED.provider_id
    )
    INSERT INTO conveyor_delivery_series AS s
    SELECT nu / 10000 * 10000, channel, ns, count(*) FROM ch
    WHERE ns <> 'sending' AND ns IS DISTINCT FROM os
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (bucket, channel, status) DO UPDATE SET n = s.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE TRIGGER conveyor_delivery_events_update AFTER UPDATE ON conveyor_deliveries
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION conveyor_delivery_events_update();
