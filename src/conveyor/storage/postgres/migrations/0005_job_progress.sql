-- How far a job has got, computed by the broker (conveyor.broker.jobs.progress): a status
-- write that is behind the recorded one (a late or reordered write) changes nothing.
ALTER TABLE conveyor_jobs ADD COLUMN progress integer NOT NULL DEFAULT 0;
