-- The job explorer (GET /v1/jobs) pages through statuses newest update first by keyset
-- (updated_at, id); this index serves that walk (backwards) and the time-range filters.
CREATE INDEX conveyor_jobs_updated ON conveyor_jobs (updated_at, id);
