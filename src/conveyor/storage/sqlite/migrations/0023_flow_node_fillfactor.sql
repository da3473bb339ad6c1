-- Nothing to do on SQLite: PostgreSQL's 0023 leaves room on each page of flow nodes for
-- their one update each (HOT); SQLite updates rows in place. The number keeps both
-- dialects in step.
SELECT 1;
