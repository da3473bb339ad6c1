-- The delivery view without two event rows per notification (issue 17): the ledger row
-- itself now stands for its made state and its current state, so a notification that is
-- queued, sent once and never touched again writes no event row at all (0020 wrote two:
-- the queued state at `begin`, the outcome at `finish`). Event rows keep only what the
-- row's next values overwrite and no column keeps: a state left for another (a retry's
-- outcome when the next attempt begins, a skip's first reason...), an attempt left in
-- doubt by a crash. The reader (delivery_events.sql, delivery_event_list) merges the row's
-- two states with them; what they mean is still read once, in conveyor.timeline.
--
-- made_status, made_at: the status and time a put made the row with (null when `begin`
--   made it, or for rows made before this migration: their events hold that state);
-- started_at: when the attempt whose outcome the row holds was handed to the provider
--   (null when the outcome did not follow a `sending`), set by `finish`.
ALTER TABLE conveyor_deliveries ADD COLUMN made_status TEXT;
ALTER TABLE conveyor_deliveries ADD COLUMN made_at INTEGER;
ALTER TABLE conveyor_deliveries ADD COLUMN started_at INTEGER;

DROP TRIGGER conveyor_delivery_events_update;

-- Rows of an upgraded file: their current state's event (0020 wrote one per outcome)
-- already holds the hand-over time; the row now answers for that state, so it takes it.
UPDATE conveyor_deliveries SET started_at = e.started_at
FROM conveyor_delivery_events e
WHERE e.delivery_seq = conveyor_deliveries.seq AND e.attempt = conveyor_deliveries.attempts
  AND e.status = conveyor_deliveries.status AND e.started_at IS NOT NULL;

-- A state is kept as an event when the row leaves it, unless the row still tells it: its
-- made state (unchanged since the put), a state the new values replace under the same
-- (attempt, status) key (0020 replaced that event too), or `sending` ending in an outcome
-- (the outcome's started_at). An attempt still `sending` when the next begins was left in
-- doubt: kept, as 0020 did. A later event of the same key replaces the earlier one, by
-- an upsert: INSERT OR REPLACE gives way to `begin`'s own conflict rule (abort) in a
-- trigger, and an upgraded file already holds the event of the state a row leaves.
CREATE TRIGGER conveyor_delivery_events_update
AFTER UPDATE OF status, attempts, error ON conveyor_deliveries
WHEN NEW.status IS NOT OLD.status OR NEW.attempts IS NOT OLD.attempts
     OR NEW.error IS NOT OLD.error
BEGIN
    INSERT INTO conveyor_delivery_events
    SELECT OLD.seq, OLD.attempts, OLD.status, OLD.updated_at, OLD.started_at,
           substr(OLD.error, 1, 500),
           CASE WHEN OLD.status = 'sent' THEN substr(OLD.provider_id, 1, 200) END
    WHERE OLD.status <> 'sending'
      AND NOT (NEW.attempts = OLD.attempts AND NEW.status = OLD.status)
      AND NOT (OLD.made_status IS OLD.status AND OLD.attempts = 0
               AND OLD.made_at = OLD.updated_at AND OLD.error IS NULL)
    ON CONFLICT DO UPDATE SET at = excluded.at, started_at = excluded.started_at,
        detail = excluded.detail, provider_id = excluded.provider_id;
    INSERT INTO conveyor_delivery_events
    SELECT OLD.seq, OLD.attempts, 'sending', OLD.updated_at, NULL, NULL, NULL
    WHERE OLD.status = 'sending' AND NEW.status = 'sending'
    ON CONFLICT DO UPDATE SET at = excluded.at;
    INSERT INTO conveyor_delivery_series
    SELECT NEW.updated_at / 10000 * 10000, NEW.channel, NEW.status, 1
    WHERE NEW.status <> 'sending' AND NEW.status IS NOT OLD.status
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
