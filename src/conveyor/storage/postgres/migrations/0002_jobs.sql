-- What workers share besides messages: rate-limit buckets, concurrency slots, cron ticks
-- and job statuses. Times are bigint milliseconds since the epoch, as everywhere.

-- One row per rate-limit key (GCRA). `tat` is the theoretical arrival time in ms: the
-- bucket is full when tat <= now, so a row with tat and blocked_until in the past says
-- nothing an absent row would not (the sweeper deletes those). double precision because
-- the emission interval (per / rate) is rarely a whole number of ms.
CREATE TABLE conveyor_rate_limits (
    key text PRIMARY KEY,
    tat double precision NOT NULL,
    granted integer NOT NULL,          -- tokens granted by the last take (for RETURNING)
    blocked_until bigint NOT NULL,     -- penalize(): no tokens before this time
    updated_at bigint NOT NULL         -- the "now" of the last take (for RETURNING)
) WITH (fillfactor = 70);              -- hot rows updated in place (HOT updates)

-- Concurrency slots: `count` held by one holder for one key until `expires_at`.
CREATE TABLE conveyor_slots (
    key text NOT NULL,
    holder text NOT NULL,
    count integer NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (key, holder)
) WITH (fillfactor = 70);
CREATE INDEX conveyor_slots_expiry ON conveyor_slots (expires_at);

-- Slots are counted across rows, so two acquires of one key must not both count before
-- either writes. A function so that the transaction-scoped advisory lock and the count
-- that follows it (a fresh snapshot: plpgsql takes one per statement) are one round trip
-- and hold no session state (pooler-safe). Returns how many of p_want were granted; the
-- holder's lease is extended whenever it holds any slot afterwards.
CREATE FUNCTION conveyor_slot_acquire(p_key text, p_holder text, p_limit integer,
                                      p_want integer, p_lease_ms bigint, p_now bigint)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
AS $acquire$
DECLARE
    v_now bigint := COALESCE(p_now, conveyor_now_ms());
    v_others bigint;
    v_mine bigint;
    v_grant integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('conveyor_slots:' || p_key, 0));
    SELECT COALESCE(sum(s.count) FILTER (WHERE s.holder <> p_holder), 0),
           COALESCE(sum(s.count) FILTER (WHERE s.holder = p_holder), 0)
      INTO v_others, v_mine
      FROM conveyor_slots s
     WHERE s.key = p_key AND s.expires_at > v_now;
    v_grant := least(p_want, greatest(0, p_limit - v_others - v_mine))::integer;
    IF v_mine + v_grant > 0 THEN
        INSERT INTO conveyor_slots AS s (key, holder, count, expires_at)
        VALUES (p_key, p_holder, v_mine + v_grant, v_now + p_lease_ms)
        ON CONFLICT (key, holder)
        -- From the row as it is now, not v_mine: a release by this holder may have
        -- committed since the count (it takes no lock), and must not be undone.
        DO UPDATE SET count = CASE WHEN s.expires_at > v_now THEN s.count ELSE 0 END
                              + v_grant,
                      expires_at = EXCLUDED.expires_at;
    END IF;
    RETURN v_grant;
END
$acquire$;

-- Renew under the same lock: a renew racing an acquire at the moment of expiry must not
-- bring back slots that the acquire has just counted as free. Returns the count held.
CREATE FUNCTION conveyor_slot_renew(p_key text, p_holder text, p_lease_ms bigint,
                                    p_now bigint)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
AS $renew$
DECLARE
    v_now bigint := COALESCE(p_now, conveyor_now_ms());
    v_count integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('conveyor_slots:' || p_key, 0));
    UPDATE conveyor_slots s SET expires_at = v_now + p_lease_ms
     WHERE s.key = p_key AND s.holder = p_holder AND s.expires_at > v_now AND s.count > 0
    RETURNING s.count INTO v_count;
    RETURN COALESCE(v_count, 0);
END
$renew$;

-- Cron ticks: a row per claimed (schedule, tick); the primary key makes the claim unique.
CREATE TABLE conveyor_cron_ticks (
    schedule text NOT NULL,
    tick_at bigint NOT NULL,
    claimed_at bigint NOT NULL,
    PRIMARY KEY (schedule, tick_at)
);
CREATE INDEX conveyor_cron_ticks_age ON conveyor_cron_ticks (claimed_at);

-- Job statuses, kept until expires_at (the sweeper deletes them after).
CREATE TABLE conveyor_jobs (
    id text PRIMARY KEY,
    queue text NOT NULL,
    task text,
    status text NOT NULL,
    attempts integer NOT NULL,
    error text,
    result text,                       -- JSON
    keep_seconds integer NOT NULL,
    updated_at bigint NOT NULL,
    expires_at bigint NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX conveyor_jobs_queue_status ON conveyor_jobs (queue, status);
CREATE INDEX conveyor_jobs_expiry ON conveyor_jobs (expires_at);
