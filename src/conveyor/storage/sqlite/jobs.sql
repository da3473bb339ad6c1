-- SQLite dialect of what workers share: rate limits, slots, cron ticks, job statuses.
-- The same names exist in ../postgres/jobs.sql. Parameters are named; "now" always comes
-- from Python (the machine's clock, or a test's). Writes run inside BEGIN IMMEDIATE, so
-- the read-then-write operations below see no other writer in between.

-- name: rate_get
-- Only in SQLite, with rate_put: the take reads the bucket, `storage.limits.gcra` computes
-- in Python, and rate_put writes it back, all in one BEGIN IMMEDIATE transaction (one
-- writer, so no other take interleaves). PostgreSQL does it as one upsert (rate_take).
SELECT tat, blocked_until FROM conveyor_rate_limits WHERE key = :key;

-- name: rate_put
-- Only in SQLite: see rate_get.
INSERT INTO conveyor_rate_limits (key, tat, granted, blocked_until, updated_at)
VALUES (:key, :tat, :granted, 0, :now)
ON CONFLICT (key) DO UPDATE SET
    tat = excluded.tat, granted = excluded.granted, updated_at = excluded.updated_at;

-- name: rate_penalize
-- Nobody gets tokens before :until; a shorter penalty never shortens a longer one.
INSERT INTO conveyor_rate_limits (key, tat, granted, blocked_until, updated_at)
VALUES (:key, 0, 0, :until, :now)
ON CONFLICT (key) DO UPDATE
SET blocked_until = max(blocked_until, excluded.blocked_until);

-- name: rate_expire
-- Rows equivalent to no row: a full bucket and no penalty.
DELETE FROM conveyor_rate_limits
WHERE key IN (SELECT key FROM conveyor_rate_limits
              WHERE tat < :now AND blocked_until < :now LIMIT :limit);

-- name: slot_held
-- Only in SQLite, with slot_put: the live slots of a key (others', the holder's), then
-- `storage.limits.slots_granted` in Python and slot_put, in one BEGIN IMMEDIATE
-- transaction. PostgreSQL does it in one call to a function (slot_acquire).
SELECT COALESCE(sum(count) FILTER (WHERE holder <> :holder), 0),
       COALESCE(sum(count) FILTER (WHERE holder = :holder), 0)
FROM conveyor_slots
WHERE key = :key AND expires_at > :now;

-- name: slot_put
-- Only in SQLite: see slot_held.
INSERT INTO conveyor_slots (key, holder, count, expires_at)
VALUES (:key, :holder, :count, :expires_at)
ON CONFLICT (key, holder) DO UPDATE
SET count = excluded.count, expires_at = excluded.expires_at;

-- name: slot_renew
UPDATE conveyor_slots SET expires_at = :expires_at
WHERE key = :key AND holder = :holder AND expires_at > :now AND count > 0
RETURNING count;

-- name: slot_release
UPDATE conveyor_slots SET count = max(count - :count, 0)
WHERE key = :key AND holder = :holder;

-- name: slot_expire
DELETE FROM conveyor_slots
WHERE (key, holder) IN (SELECT key, holder FROM conveyor_slots
                        WHERE expires_at <= :now OR count = 0 LIMIT :limit);

-- name: cron_claim
-- The primary key admits one row per (schedule, tick).
INSERT INTO conveyor_cron_ticks (schedule, tick_at, claimed_at)
VALUES (:schedule, :tick_at, :now)
ON CONFLICT DO NOTHING;

-- name: cron_lease
-- A tick's claim as a lease (migration 0029): won when the tick is unclaimed, or when its
-- claim is still pending (never sent) and at least :lease_ms old (its scheduler was killed
-- between claim and send) but younger than :window_ms (so that a send of that first
-- claimer, if it did send, is still within its deduplication window and a second send is
-- dropped). In one transaction with cron_tick_pending and cron_lapsed.
INSERT INTO conveyor_cron_ticks (schedule, tick_at, claimed_at, pending)
VALUES (:schedule, :tick_at, :now, 1)
ON CONFLICT (schedule, tick_at) DO UPDATE SET claimed_at = excluded.claimed_at
WHERE conveyor_cron_ticks.pending
  AND conveyor_cron_ticks.claimed_at <= excluded.claimed_at - :lease_ms
  AND conveyor_cron_ticks.claimed_at > excluded.claimed_at - :window_ms;

-- name: cron_tick_pending
-- Only in SQLite (PostgreSQL's cron_lease answers it in the same statement): whether a
-- tick the lease did not win is still pending.
SELECT pending FROM conveyor_cron_ticks WHERE schedule = :schedule AND tick_at = :tick_at;

-- name: cron_lapsed
-- Only in SQLite (PostgreSQL's cron_lease answers it in the same statement): the
-- schedule's other pending ticks whose lease lapsed, by the partial index.
SELECT tick_at FROM conveyor_cron_ticks
WHERE schedule = :schedule AND pending AND tick_at <> :tick_at
  AND claimed_at <= :now - :lease_ms AND claimed_at > :now - :window_ms
ORDER BY tick_at LIMIT 100;

-- name: cron_sent
-- The leased tick's job is sent: its claim is final.
UPDATE conveyor_cron_ticks SET pending = 0
WHERE schedule = :schedule AND tick_at = :tick_at AND pending;

-- name: cron_expire
DELETE FROM conveyor_cron_ticks
WHERE (schedule, tick_at) IN (SELECT schedule, tick_at FROM conveyor_cron_ticks
                              WHERE claimed_at < :now - :keep_ms LIMIT :limit);

-- name: job_put_many
-- A write behind the stored progress changes nothing (see broker.jobs.progress), unless
-- its row has expired or the stored job is dead and this starts it over: a retry's
-- `queued`, or a run that no attempt row names yet (a redrive runs attempt 1 again, under
-- a new start). ?16 is the start of the run the write reports (NULL: it reports none). A
-- late write of a run already recorded (a worker whose lease lapsed) leaves it dead.
-- The same holds for a running or retrying job: a write of a run already recorded that
-- is not the run the row reports (run_started, migration 0029) is a late write of an
-- older run (a frozen worker's, after a retry reopened the job: its attempt number may be
-- the higher) and changes nothing.
-- created_at, key and args are the first write's (an expired row starts over).
INSERT INTO conveyor_jobs (id, queue, task, status, attempts, error, result, keep_seconds,
                           updated_at, expires_at, progress, report, key, args, created_at,
                           run_started)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?16)
ON CONFLICT (id) DO UPDATE SET
    queue = excluded.queue, task = excluded.task, status = excluded.status,
    attempts = excluded.attempts, error = excluded.error, result = excluded.result,
    keep_seconds = excluded.keep_seconds, updated_at = excluded.updated_at,
    expires_at = excluded.expires_at, progress = excluded.progress,
    report = coalesce(excluded.report, conveyor_jobs.report),
    key = CASE WHEN conveyor_jobs.expires_at <= excluded.updated_at THEN excluded.key
               ELSE coalesce(conveyor_jobs.key, excluded.key) END,
    args = CASE WHEN conveyor_jobs.expires_at <= excluded.updated_at THEN excluded.args
                ELSE coalesce(conveyor_jobs.args, excluded.args) END,
    created_at = CASE WHEN conveyor_jobs.expires_at <= excluded.updated_at
                      THEN excluded.created_at
                      ELSE coalesce(conveyor_jobs.created_at, excluded.created_at) END,
    run_started = CASE WHEN ?16 IS NOT NULL THEN ?16
                       WHEN excluded.status = 'queued' THEN NULL
                       ELSE conveyor_jobs.run_started END
WHERE (excluded.progress >= conveyor_jobs.progress
       AND NOT (?16 IS NOT NULL
                AND conveyor_jobs.status IN ('running', 'retrying')
                AND coalesce(conveyor_jobs.run_started <> ?16, 0)
                AND EXISTS (
                    SELECT 1 FROM conveyor_job_attempts a
                    WHERE a.job_id = excluded.id AND a.attempt = excluded.attempts
                      AND a.started_at = ?16)))
   OR conveyor_jobs.expires_at <= excluded.updated_at
   OR (conveyor_jobs.status = 'dead'
       AND (excluded.status = 'queued'
            OR (?16 IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM conveyor_job_attempts a
                WHERE a.job_id = excluded.id AND a.attempt = excluded.attempts
                  AND a.started_at = ?16))));

-- name: job_attempt_put_many
-- In job_put_many's transaction. A start whose end came first (a reordered batch)
-- changes nothing: an ended attempt is final.
INSERT INTO conveyor_job_attempts (job_id, attempt, started_at, worker, ended_at, outcome,
                                   error, traceback)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id, attempt, started_at) DO UPDATE SET
    worker = coalesce(excluded.worker, worker), ended_at = excluded.ended_at,
    outcome = excluded.outcome, error = excluded.error, traceback = excluded.traceback
WHERE conveyor_job_attempts.ended_at IS NULL;

-- name: job_attempts
SELECT attempt, started_at, worker, ended_at, outcome, error, traceback
FROM conveyor_job_attempts
WHERE job_id = :id
ORDER BY started_at, attempt;

-- name: job_get
SELECT id, status, queue, task, attempts, error, result, keep_seconds, updated_at, report,
       created_at, key, args
FROM conveyor_jobs
WHERE id = :id AND expires_at > :now;

-- name: job_counts
SELECT status, count(*)
FROM conveyor_jobs
WHERE (:queue IS NULL OR queue = :queue) AND expires_at > :now
GROUP BY status;

-- name: job_list
-- Any state: newest update first by the (updated_at, id) index (migration 0012), walked
-- backwards from the keyset cursor; the other filters are checked on the rows it visits.
-- With a key, job_list_key; with a state, job_list_state. (:status is always NULL here.)
SELECT id, status, queue, task, attempts, error, result, keep_seconds, updated_at, report,
       created_at, key, NULL
FROM conveyor_jobs
WHERE expires_at > :now
  AND (:status IS NULL OR status = :status)
  AND (:task IS NULL OR task = :task)
  AND (:queue IS NULL OR queue = :queue)
  AND (:since IS NULL OR updated_at >= :since)
  AND (:until IS NULL OR updated_at < :until)
  AND (:created_since IS NULL OR created_at >= :created_since)
  AND (:created_until IS NULL OR created_at < :created_until)
  AND (:after_at IS NULL OR (updated_at, id) < (:after_at, :after_id))
ORDER BY updated_at DESC, id DESC
LIMIT :limit;

-- name: job_list_state
-- One state: by the (status, updated_at, id) index instead, so a rare state is not found
-- by walking every other state's rows (measured with 200,000 rows: 117 ms for 50 dead
-- ones in job_list's shape).
SELECT id, status, queue, task, attempts, error, result, keep_seconds, updated_at, report,
       created_at, key, NULL
FROM conveyor_jobs
WHERE expires_at > :now
  AND status = :status
  AND (:task IS NULL OR task = :task)
  AND (:queue IS NULL OR queue = :queue)
  AND (:since IS NULL OR updated_at >= :since)
  AND (:until IS NULL OR updated_at < :until)
  AND (:created_since IS NULL OR created_at >= :created_since)
  AND (:created_until IS NULL OR created_at < :created_until)
  AND (:after_at IS NULL OR (updated_at, id) < (:after_at, :after_id))
ORDER BY updated_at DESC, id DESC
LIMIT :limit;

-- name: job_list_key
-- One key: by the partial (key, updated_at, id) index (migration 0018), whatever else is
-- filtered (one key's jobs are few next to all of them).
SELECT id, status, queue, task, attempts, error, result, keep_seconds, updated_at, report,
       created_at, key, NULL
FROM conveyor_jobs
WHERE key = :key AND key IS NOT NULL
  AND expires_at > :now
  AND (:status IS NULL OR status = :status)
  AND (:task IS NULL OR task = :task)
  AND (:queue IS NULL OR queue = :queue)
  AND (:since IS NULL OR updated_at >= :since)
  AND (:until IS NULL OR updated_at < :until)
  AND (:created_since IS NULL OR created_at >= :created_since)
  AND (:created_until IS NULL OR created_at < :created_until)
  AND (:after_at IS NULL OR (updated_at, id) < (:after_at, :after_id))
ORDER BY updated_at DESC, id DESC
LIMIT :limit;

-- name: job_delete_many
-- The ids as one JSON array (a bounded batch, one statement).
DELETE FROM conveyor_jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: job_attempt_delete_many
-- With job_delete_many and job_expire, in their transaction: attempts go with the status.
DELETE FROM conveyor_job_attempts WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: job_expire
DELETE FROM conveyor_jobs
WHERE id IN (SELECT id FROM conveyor_jobs WHERE expires_at <= :now LIMIT :limit)
RETURNING id;

-- name: job_counts_by_task
-- For /metrics: conveyor_jobs by queue and task.
SELECT queue, COALESCE(task, ''), status, count(*)
FROM conveyor_jobs
WHERE expires_at > :now
GROUP BY queue, task, status;

-- name: job_attempt_dead_letter_many
-- Only in SQLite: PostgreSQL's job_dead_letter_many ends the attempts in its own
-- statement (a CTE). With job_dead_letter_many, first, in the receive's transaction: the
-- open attempts of the live tracked jobs among these dead-lettered messages (:ids, JSON)
-- end `dead`.
UPDATE conveyor_job_attempts
SET ended_at = :now, outcome = 'dead', error = :error
WHERE job_id IN (SELECT j.id FROM conveyor_jobs j
                 WHERE j.id IN (SELECT value FROM json_each(:ids))
                   AND j.status IN ('queued', 'running', 'retrying')
                   AND j.expires_at > :now)
  AND ended_at IS NULL;

-- name: job_dead_letter_many
-- Tracked jobs whose messages the receive just moved to the dead-letter queue after
-- :receives receives, in its transaction (sqlite_storage.py): a worker killed in the last
-- attempt records no end, so without this the job stayed `running` for good. Only a live
-- job not ended yet. The dead step of attempt :receives (or the row's own, if further),
-- so a late write of that same attempt's end (a worker that was only frozen) still lands.
UPDATE conveyor_jobs
SET status = 'dead', error = :error, attempts = max(attempts, :receives),
    progress = max(attempts, :receives) * 4 + 3, updated_at = :now,
    expires_at = :now + keep_seconds * 1000
WHERE id IN (SELECT value FROM json_each(:ids))
  AND status IN ('queued', 'running', 'retrying') AND expires_at > :now;
