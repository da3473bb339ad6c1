-- PostgreSQL dialect of what workers share: rate limits, slots, cron ticks, job statuses.
-- The same names exist in ../sqlite/jobs.sql. `COALESCE($n::bigint, conveyor_now_ms())`
-- is "now": the database clock unless a test injects one. One statement per operation, no
-- session state (pooler-safe).

-- name: rate_take
-- Only in PostgreSQL (SQLite: rate_get, Python, rate_put). GCRA in one upsert, so
-- concurrent takers of a key queue on its row lock and each sees the row its predecessor
-- wrote (ON CONFLICT re-reads the latest version): one round trip, where reading under
-- FOR UPDATE and writing back would take four. $2 is the emission interval in ms
-- (per / rate), $3 the burst, $4 the tokens wanted. The arithmetic is `gcra` in
-- ../limits.py (a new key starts full; 1e-6 keeps float rounding from losing a whole token
-- at an exact boundary); tests/storage/test_seam.py holds the two to each other. The
-- grant and "now" are stored only so that RETURNING can report them (it sees the new row
-- alone).
INSERT INTO conveyor_rate_limits AS r (key, tat, granted, blocked_until, updated_at)
SELECT $1, t.now + least($3::integer, $4::integer) * $2::float8,
       least($3::integer, $4::integer), 0, t.now
FROM (SELECT COALESCE($5::bigint, conveyor_now_ms()) AS now) t
ON CONFLICT (key) DO UPDATE SET
    granted = CASE WHEN r.blocked_until > EXCLUDED.updated_at THEN 0 ELSE
        least($4::integer, greatest(0, floor($3::integer + 1e-6 - (greatest(
            r.tat, EXCLUDED.updated_at) - EXCLUDED.updated_at) / $2::float8)))::integer END,
    tat = CASE WHEN r.blocked_until > EXCLUDED.updated_at THEN r.tat ELSE
        greatest(r.tat, EXCLUDED.updated_at) + $2::float8 *
        least($4::integer, greatest(0, floor($3::integer + 1e-6 - (greatest(
            r.tat, EXCLUDED.updated_at) - EXCLUDED.updated_at) / $2::float8))) END,
    updated_at = EXCLUDED.updated_at
RETURNING granted, tat, blocked_until, updated_at;

-- name: rate_penalize
-- Nobody gets tokens before now + $2 ms; a shorter penalty never shortens a longer one.
INSERT INTO conveyor_rate_limits AS r (key, tat, granted, blocked_until, updated_at)
SELECT $1, 0, 0, t.now + $2::bigint, t.now
FROM (SELECT COALESCE($3::bigint, conveyor_now_ms()) AS now) t
ON CONFLICT (key) DO UPDATE
SET blocked_until = greatest(r.blocked_until, EXCLUDED.blocked_until);

-- name: rate_expire
-- Rows equivalent to no row (full bucket, no penalty). The outer conditions are checked
-- again on the latest row version, so a take committed meanwhile is never deleted.
DELETE FROM conveyor_rate_limits
WHERE key IN (SELECT key FROM conveyor_rate_limits
              WHERE tat < COALESCE($1::bigint, conveyor_now_ms())
                AND blocked_until < COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2)
  AND tat < COALESCE($1::bigint, conveyor_now_ms())
  AND blocked_until < COALESCE($1::bigint, conveyor_now_ms());

-- name: slot_acquire
-- Only in PostgreSQL (SQLite: slot_held, Python, slot_put): one round trip to
-- conveyor_slot_acquire (migration 0002), which takes the key's advisory lock, counts, and
-- grants by the rule of `storage.limits.slots_granted`; tests/storage/test_seam.py holds
-- the two to each other.
SELECT conveyor_slot_acquire($1, $2, $3, $4, $5, $6::bigint);

-- name: slot_renew
SELECT conveyor_slot_renew($1, $2, $3, $4::bigint);

-- name: slot_release
-- Only ever lowers a count, so it needs no lock: a racing acquire at worst counts a slot
-- that is being given back.
UPDATE conveyor_slots SET count = greatest(count - $3, 0)
WHERE key = $1 AND holder = $2;

-- name: slot_expire
-- Lapsed leases and rows released to zero (checked again on the latest row version).
DELETE FROM conveyor_slots
WHERE (key, holder) IN (
        SELECT key, holder FROM conveyor_slots
        WHERE expires_at <= COALESCE($1::bigint, conveyor_now_ms()) OR count = 0 LIMIT $2)
  AND (expires_at <= COALESCE($1::bigint, conveyor_now_ms()) OR count = 0);

-- name: cron_claim
-- The primary key admits one row per (schedule, tick).
INSERT INTO conveyor_cron_ticks (schedule, tick_at, claimed_at)
VALUES ($1, $2::bigint, COALESCE($3::bigint, conveyor_now_ms()))
ON CONFLICT DO NOTHING
RETURNING 1;

-- name: cron_lease
-- A tick's claim as a lease (migration 0029), one round trip: won when the tick is
-- unclaimed, or when its claim is still pending (never sent) and at least $4 ms old (its
-- scheduler was killed between claim and send) but younger than $5 ms (so that a send of
-- that first claimer, if it did send, is still within its deduplication window and a
-- second send is dropped). Also answers whether a lost tick is still pending (the outer
-- SELECTs see the statement's snapshot: a claim committed meanwhile reads as pending, so
-- the caller only looks again later) and the schedule's other lapsed pending ticks, by the
-- partial index.
WITH t AS (SELECT COALESCE($3::bigint, conveyor_now_ms()) AS now),
won AS (
    INSERT INTO conveyor_cron_ticks AS c (schedule, tick_at, claimed_at, pending)
    SELECT $1, $2::bigint, t.now, true FROM t
    ON CONFLICT (schedule, tick_at) DO UPDATE SET claimed_at = EXCLUDED.claimed_at
    WHERE c.pending AND c.claimed_at <= EXCLUDED.claimed_at - $4::bigint
      AND c.claimed_at > EXCLUDED.claimed_at - $5::bigint
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM won),
       COALESCE((SELECT c.pending FROM conveyor_cron_ticks c
                 WHERE c.schedule = $1 AND c.tick_at = $2::bigint), true),
       ARRAY(SELECT c.tick_at FROM conveyor_cron_ticks c, t
             WHERE c.schedule = $1 AND c.pending AND c.tick_at <> $2::bigint
               AND c.claimed_at <= t.now - $4::bigint AND c.claimed_at > t.now - $5::bigint
             ORDER BY c.tick_at LIMIT 100);

-- name: cron_sent
-- The leased tick's job is sent: its claim is final.
UPDATE conveyor_cron_ticks SET pending = false
WHERE schedule = $1 AND tick_at = $2::bigint AND pending;

-- name: cron_expire
-- By claim time, not tick time: a tick is remembered for the whole window after its claim,
-- whatever clock its scheduler keeps.
DELETE FROM conveyor_cron_ticks
WHERE (schedule, tick_at) IN (
    SELECT schedule, tick_at FROM conveyor_cron_ticks
    WHERE claimed_at < COALESCE($1::bigint, conveyor_now_ms()) - $2::bigint LIMIT $3);

-- name: job_put_many
-- A batch as arrays, one row per id (of repeated ids the broker keeps the furthest along).
-- A write behind the stored progress changes nothing (see broker.jobs.progress), unless
-- its row has expired or the stored job is dead and this starts it over: a retry's
-- `queued`, or a run that no attempt row names yet (a redrive runs attempt 1 again, under
-- a new start). $14 holds the start of the run each row reports (NULL: it reports none),
-- kept as run_started (migration 0029). A late write of a run already recorded (a worker
-- whose lease lapsed) leaves it dead. The same holds for a running or retrying job: a
-- write of a run already recorded that is not the run the row reports is a late write of
-- an older run (a frozen worker's, after a retry reopened the job: its attempt number may
-- be the higher) and changes nothing.
-- created_at, key and args are the first write's (an expired row starts over).
INSERT INTO conveyor_jobs AS j (id, queue, task, status, attempts, error, result,
                                keep_seconds, updated_at, expires_at, progress, report,
                                key, args, created_at, run_started)
SELECT b.id, b.queue, b.task, b.status, b.attempts, b.error, b.result, b.keep,
       t.now, t.now + b.keep::bigint * 1000, b.progress, b.report, b.key, b.args, t.now,
       b.started
FROM (SELECT COALESCE($9::bigint, conveyor_now_ms()) AS now) t,
     unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::text[],
            $7::text[], $8::integer[], $10::integer[], $11::text[], $12::text[],
            $13::text[], $14::bigint[])
         AS b(id, queue, task, status, attempts, error, result, keep, progress, report,
              key, args, started)
ON CONFLICT (id) DO UPDATE SET
    queue = EXCLUDED.queue, task = EXCLUDED.task, status = EXCLUDED.status,
    attempts = EXCLUDED.attempts, error = EXCLUDED.error, result = EXCLUDED.result,
    keep_seconds = EXCLUDED.keep_seconds, updated_at = EXCLUDED.updated_at,
    expires_at = EXCLUDED.expires_at, progress = EXCLUDED.progress,
    report = COALESCE(EXCLUDED.report, j.report),
    key = CASE WHEN j.expires_at <= EXCLUDED.updated_at THEN EXCLUDED.key
               ELSE COALESCE(j.key, EXCLUDED.key) END,
    args = CASE WHEN j.expires_at <= EXCLUDED.updated_at THEN EXCLUDED.args
                ELSE COALESCE(j.args, EXCLUDED.args) END,
    created_at = CASE WHEN j.expires_at <= EXCLUDED.updated_at THEN EXCLUDED.created_at
                      ELSE COALESCE(j.created_at, EXCLUDED.created_at) END,
    run_started = CASE WHEN EXCLUDED.run_started IS NOT NULL THEN EXCLUDED.run_started
                       WHEN EXCLUDED.status = 'queued' THEN NULL
                       ELSE j.run_started END
WHERE (EXCLUDED.progress >= j.progress
       AND NOT (EXCLUDED.run_started IS NOT NULL
                AND j.status IN ('running', 'retrying')
                AND COALESCE(j.run_started <> EXCLUDED.run_started, false)
                AND EXISTS (
                    SELECT 1 FROM conveyor_job_attempts a
                    WHERE a.job_id = EXCLUDED.id AND a.attempt = EXCLUDED.attempts
                      AND a.started_at = EXCLUDED.run_started)))
   OR j.expires_at <= EXCLUDED.updated_at
   OR (j.status = 'dead'
       AND (EXCLUDED.status = 'queued'
            OR (EXCLUDED.run_started IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM conveyor_job_attempts a
                WHERE a.job_id = EXCLUDED.id AND a.attempt = EXCLUDED.attempts
                  AND a.started_at = EXCLUDED.run_started))));

-- name: job_attempt_put_many
-- In job_put_many's transaction, as arrays. A start whose end came first (a reordered
-- batch) changes nothing: an ended attempt is final.
INSERT INTO conveyor_job_attempts AS a (job_id, attempt, started_at, worker, ended_at,
                                        outcome, error, traceback)
SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::text[], $5::bigint[],
                     $6::text[], $7::text[], $8::text[])
ON CONFLICT (job_id, attempt, started_at) DO UPDATE SET
    worker = COALESCE(EXCLUDED.worker, a.worker), ended_at = EXCLUDED.ended_at,
    outcome = EXCLUDED.outcome, error = EXCLUDED.error, traceback = EXCLUDED.traceback
WHERE a.ended_at IS NULL;

-- name: job_attempts
SELECT attempt, started_at, worker, ended_at, outcome, error, traceback
FROM conveyor_job_attempts
WHERE job_id = $1
ORDER BY started_at, attempt;

-- name: job_get
SELECT id, status, queue, task, attempts, error, result, keep_seconds, updated_at, report,
       created_at, key, args
FROM conveyor_jobs
WHERE id = $1 AND expires_at > COALESCE($2::bigint, conveyor_now_ms());

-- name: job_counts
SELECT status, count(*)
FROM conveyor_jobs
WHERE ($1::text IS NULL OR queue = $1)
  AND expires_at > COALESCE($2::bigint, conveyor_now_ms())
GROUP BY status;

-- name: job_list
-- Any state: newest update first by the (updated_at, id) index (migration 0012), walked
-- backwards from the keyset cursor ($6, $7); the other filters are checked on the rows it
-- visits. With a key, job_list_key; with a state, job_list_state. ($1 is NULL here.)
SELECT id, status, queue, task, attempts, error, result, keep_seconds, updated_at, report,
       created_at, key, NULL
FROM conveyor_jobs
WHERE expires_at > COALESCE($9::bigint, conveyor_now_ms())
  AND ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR task = $2)
  AND ($3::text IS NULL OR queue = $3)
  AND ($4::bigint IS NULL OR updated_at >= $4)
  AND ($5::bigint IS NULL OR updated_at < $5)
  AND ($10::bigint IS NULL OR created_at >= $10)
  AND ($11::bigint IS NULL OR created_at < $11)
  AND ($6::bigint IS NULL OR (updated_at, id) < ($6::bigint, $7::text))
ORDER BY updated_at DESC, id DESC
LIMIT $8;

-- name: job_list_state
-- One state ($1): by the (status, updated_at, id) index instead, so a state with few rows
-- is not found by walking every other state's, and one with many is not sorted (measured
-- with 200,000 rows: 351 ms for job_list's shape with status = 'succeeded').
SELECT id, status, queue, task, attempts, error, result, keep_seconds, updated_at, report,
       created_at, key, NULL
FROM conveyor_jobs
WHERE expires_at > COALESCE($9::bigint, conveyor_now_ms())
  AND status = $1
  AND ($2::text IS NULL OR task = $2)
  AND ($3::text IS NULL OR queue = $3)
  AND ($4::bigint IS NULL OR updated_at >= $4)
  AND ($5::bigint IS NULL OR updated_at < $5)
  AND ($10::bigint IS NULL OR created_at >= $10)
  AND ($11::bigint IS NULL OR created_at < $11)
  AND ($6::bigint IS NULL OR (updated_at, id) < ($6::bigint, $7::text))
ORDER BY updated_at DESC, id DESC
LIMIT $8;

-- name: job_list_key
-- One key ($12): by the partial (key, updated_at, id) index (migration 0018), whatever
-- else is filtered (one key's jobs are few next to all of them).
SELECT id, status, queue, task, attempts, error, result, keep_seconds, updated_at, report,
       created_at, key, NULL
FROM conveyor_jobs
WHERE key = $12::text AND key IS NOT NULL
  AND expires_at > COALESCE($9::bigint, conveyor_now_ms())
  AND ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR task = $2)
  AND ($3::text IS NULL OR queue = $3)
  AND ($4::bigint IS NULL OR updated_at >= $4)
  AND ($5::bigint IS NULL OR updated_at < $5)
  AND ($10::bigint IS NULL OR created_at >= $10)
  AND ($11::bigint IS NULL OR created_at < $11)
  AND ($6::bigint IS NULL OR (updated_at, id) < ($6::bigint, $7::text))
ORDER BY updated_at DESC, id DESC
LIMIT $8;

-- name: job_delete_many
DELETE FROM conveyor_jobs WHERE id = ANY($1::text[]);

-- name: job_attempt_delete_many
-- With job_delete_many and job_expire, in their transaction: attempts go with the status.
DELETE FROM conveyor_job_attempts WHERE job_id = ANY($1::text[]);

-- name: job_expire
DELETE FROM conveyor_jobs
WHERE id IN (SELECT id FROM conveyor_jobs
             WHERE expires_at <= COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2)
  AND expires_at <= COALESCE($1::bigint, conveyor_now_ms())
RETURNING id;

-- name: job_counts_by_task
-- For /metrics: conveyor_jobs by queue and task (the queue_status index does not cover
-- task; the table holds statuses for their keep time only).
SELECT queue, COALESCE(task, ''), status, count(*)
FROM conveyor_jobs
WHERE expires_at > COALESCE($1::bigint, conveyor_now_ms())
GROUP BY queue, task, status;

-- name: job_dead_letter_many
-- Tracked jobs whose messages ($1) the receive just moved to the dead-letter queue after
-- $4 receives, in the transaction that moved them (postgres_flows.py): a worker killed in
-- the last attempt records no end, so without this the job stayed `running` for good.
-- Only a live job not ended yet; its open attempt ends `dead` with it. The dead step of
-- attempt $4 (or the row's own, if further), so a late write of that same attempt's end
-- (a worker that was only frozen) still lands.
WITH t AS (SELECT COALESCE($3::bigint, conveyor_now_ms()) AS now),
ended AS (
    UPDATE conveyor_jobs j
    SET status = 'dead', error = $2, attempts = greatest(j.attempts, $4::integer),
        progress = greatest(j.attempts, $4::integer) * 4 + 3, updated_at = t.now,
        expires_at = t.now + j.keep_seconds::bigint * 1000
    FROM t
    WHERE j.id = ANY($1::text[]) AND j.status IN ('queued', 'running', 'retrying')
      AND j.expires_at > t.now
    RETURNING j.id
)
UPDATE conveyor_job_attempts a
SET ended_at = t.now, outcome = 'dead', error = $2
FROM ended, t
WHERE a.job_id = ended.id AND a.ended_at IS NULL;
