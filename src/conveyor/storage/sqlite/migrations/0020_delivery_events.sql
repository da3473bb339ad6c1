-- The delivery view (issue 14): each notification's timeline and counts per channel and
-- status over time. Written by triggers on the ledger table, so every statement that
-- writes ledger rows (put, begin, finish, whichever code path sends them) records its
-- events in the same statement and transaction: no extra round trip, no second copy of
-- the ledger's SQL. The triggers only copy; what an event means is read in Python
-- (conveyor.timeline). Rebuilding conveyor_deliveries (as 0005 did) drops them: recreate.
--
-- One row per event, keyed by the ledger row's seq (rows of a batch are neighbours, so a
-- batch's events land on a few pages, unlike an index on the hashed delivery id):
--   attempt 0, the status a row was made with (queued, held, skipped), recorded when the
--     row first changes (its time is then still the row's updated_at);
--   attempt n, status sending: attempt n was handed to the provider at `at` and its answer
--     never recorded (a worker died), so it was sent again;
--   attempt n, any other status: the outcome of attempt n at `at`, handed over at
--     `started_at`, with the provider's answer (error, or provider id when sent), cut.
-- A repeat of (attempt, status) keeps the later one (a skip recorded, then its reason).
CREATE TABLE conveyor_delivery_events (
    delivery_seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    at INTEGER NOT NULL,
    started_at INTEGER,
    detail TEXT,
    provider_id TEXT,
    PRIMARY KEY (delivery_seq, attempt, status)
) WITHOUT ROWID;

-- How many notifications entered each status, per 10-second bucket (by the row's time),
-- channel and status; `sending` is left out (every attempt passes it). Kept for the
-- ledger's default keep time; the sweeper deletes older buckets.
CREATE TABLE conveyor_delivery_series (
    bucket INTEGER NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (bucket, channel, status)
) WITHOUT ROWID;

CREATE TRIGGER conveyor_delivery_events_update
AFTER UPDATE OF status, attempts, error ON conveyor_deliveries
WHEN NEW.status IS NOT OLD.status OR NEW.attempts IS NOT OLD.attempts
     OR NEW.error IS NOT OLD.error
BEGIN
    INSERT OR REPLACE INTO conveyor_delivery_events
    SELECT OLD.seq, 0, OLD.status, OLD.updated_at, NULL, substr(OLD.error, 1, 500), NULL
    WHERE OLD.attempts = 0;
    INSERT OR REPLACE INTO conveyor_delivery_events
    SELECT OLD.seq, OLD.attempts, 'sending', OLD.updated_at, NULL, NULL, NULL
    WHERE OLD.status = 'sending' AND NEW.status = 'sending';
    INSERT OR REPLACE INTO conveyor_delivery_events
    SELECT NEW.seq, NEW.attempts, NEW.status, NEW.updated_at,
           CASE WHEN OLD.status = 'sending' THEN OLD.updated_at END,
           substr(NEW.error, 1, 500),
           CASE WHEN NEW.status = 'sent' THEN substr(NEW.provider_id, 1, 200) END
    WHERE NEW.status <> 'sending';
    INSERT INTO conveyor_delivery_series
    SELECT NEW.updated_at / 10000 * 10000, NEW.channel, NEW.status, 1
    WHERE NEW.status <> 'sending' AND NEW.status IS NOT OLD.status
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

-- Events go with their ledger row (expiry, or any other delete).
CREATE TRIGGER conveyor_delivery_events_delete
AFTER DELETE ON conveyor_deliveries
BEGIN
    DELETE FROM conveyor_delivery_events WHERE delivery_seq = OLD.seq;
END;

CREATE TRIGGER conveyor_delivery_series_insert
AFTER INSERT ON conveyor_deliveries
WHEN NEW.status <> 'sending'
BEGIN
    INSERT INTO conveyor_delivery_series
    VALUES (NEW.updated_at / 10000 * 10000, NEW.channel, NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
