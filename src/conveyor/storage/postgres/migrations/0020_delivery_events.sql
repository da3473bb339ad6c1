-- The delivery view (issue 14): each notification's timeline and counts per channel and
-- status over time. Written by statement-level triggers on the ledger table (transition
-- tables: one set-based insert per ledger statement, not one per row), so every
-- statement that writes ledger rows records its events in the same statement and
-- transaction: no extra round trip, no second copy of the ledger's SQL. The triggers only
-- copy; what an event means is read in Python (conveyor.timeline).
--
-- One row per event (the same rows as SQLite's, keyed by delivery id here):
--   attempt 0, the status a row was made with (queued, held, skipped), recorded when the
--     row first changes (its time is then still the row's updated_at);
--   attempt n, status sending: attempt n was handed to the provider at `at` and its answer
--     never recorded (a worker died), so it was sent again;
--   attempt n, any other status: the outcome of attempt n at `at`, handed over at
--     `started_at`, with the provider's answer (error, or provider id when sent), cut.
-- A repeat of (attempt, status) keeps the later one (a skip recorded, then its reason).
CREATE TABLE conveyor_delivery_events (
    delivery_id text NOT NULL,
    attempt integer NOT NULL,
    status text NOT NULL,
    at bigint NOT NULL,
    started_at bigint,
    detail text,
    provider_id text,
    PRIMARY KEY (delivery_id, attempt, status)
);

-- How many notifications entered each status, per 10-second bucket (by the row's time),
-- channel and status; `sending` is left out (every attempt passes it). Kept for the
-- ledger's default keep time; the sweeper deletes older buckets.
CREATE TABLE conveyor_delivery_series (
    bucket bigint NOT NULL,
    channel text NOT NULL,
    status text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (bucket, channel, status)
);

-- One statement per ledger statement: the changed rows joined once, their events in one
-- insert (a skip's reason replaces the skip, so those two never meet in it), their counts
-- added in key order (so two statements never wait for each other's counter rows in
-- opposite orders).
CREATE FUNCTION conveyor_delivery_events_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH ch AS (
        SELECT n.id, n.channel, o.status AS os, o.attempts AS oa, o.updated_at AS ou,
               o.error AS oe, n.status AS ns, n.attempts AS na, n.updated_at AS nu,
               n.error AS ne, n.provider_id AS np
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE n.status IS DISTINCT FROM o.status OR n.attempts IS DISTINCT FROM o.attempts
              OR n.error IS DISTINCT FROM o.error
    ), ev AS (
        INSERT INTO conveyor_delivery_events AS e
        SELECT id, 0, os, ou, NULL::bigint, left(oe, 500), NULL FROM ch
        WHERE oa = 0 AND os <> 'sending' AND NOT (na = 0 AND ns = os)
        UNION ALL
        SELECT id, oa, 'sending', ou, NULL, NULL, NULL FROM ch
        WHERE os = 'sending' AND ns = 'sending'
        UNION ALL
        SELECT id, na, ns, nu, CASE WHEN os = 'sending' THEN ou END, left(ne, 500),
               CASE WHEN ns = 'sent' THEN left(np, 200) END
        FROM ch WHERE ns <> 'sending'
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

CREATE FUNCTION conveyor_delivery_series_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conveyor_delivery_series AS s
    SELECT n.updated_at / 10000 * 10000, n.channel, n.status, count(*)
    FROM new_rows n WHERE n.status <> 'sending'
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (bucket, channel, status) DO UPDATE SET n = s.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE TRIGGER conveyor_delivery_series_insert AFTER INSERT ON conveyor_deliveries
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION conveyor_delivery_series_insert();

-- Events go with their ledger row (expiry, or any other delete).
CREATE FUNCTION conveyor_delivery_events_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM conveyor_delivery_events e USING old_rows o WHERE e.delivery_id = o.id;
    RETURN NULL;
END $$;

CREATE TRIGGER conveyor_delivery_events_delete AFTER DELETE ON conveyor_deliveries
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION conveyor_delivery_events_delete();
