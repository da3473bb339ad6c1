-- PostgreSQL dialect of the templates table (migrations/0015_templates.sql); the same
-- names exist in ../sqlite/templates.sql. A null "now" means the database clock.

-- name: template_put
INSERT INTO conveyor_templates (name, doc, updated_at)
VALUES ($1, $2, COALESCE($3::bigint, conveyor_now_ms()))
ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at
RETURNING updated_at;

-- name: template_get
SELECT doc, updated_at FROM conveyor_templates WHERE name = $1;

-- name: template_delete
DELETE FROM conveyor_templates WHERE name = $1;

-- name: template_list
-- Keyset paging by name, in byte order as in SQLite (not the database's collation).
SELECT doc, updated_at FROM conveyor_templates WHERE name > $1 COLLATE "C"
ORDER BY name COLLATE "C" LIMIT $2;
