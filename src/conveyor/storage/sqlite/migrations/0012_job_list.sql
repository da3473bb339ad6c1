-- The job explorer (GET /v1/jobs) pages through statuses newest update first by keyset
-- (updated_at, id); the first index serves that walk (backwards) and the time-range
-- filters, the second the same walk within one state (`GET /v1/jobs?state=dead`).
CREATE INDEX conveyor_jobs_updated ON conveyor_jobs (updated_at, id);
CREATE INDEX conveyor_jobs_status_updated ON conveyor_jobs (status, updated_at, id);
