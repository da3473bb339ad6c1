-- A running job's progress report (any JSON value, as text), shown with its status.
-- Additive: older nodes ignore it.
ALTER TABLE conveyor_jobs ADD COLUMN report text;
