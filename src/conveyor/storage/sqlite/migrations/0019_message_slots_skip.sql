-- Nothing to do on SQLite: the PostgreSQL migration of the same number adds message
-- slots (partitions), which SQLite does not have (one file, no dead rows to walk).
SELECT 1;
