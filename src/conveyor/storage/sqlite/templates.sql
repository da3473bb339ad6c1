-- SQLite dialect of the templates table (migrations/0015_templates.sql); the same names
-- exist in ../postgres/templates.sql. "now" always comes from Python.

-- name: template_put
INSERT INTO conveyor_templates (name, doc, updated_at) VALUES (:name, :doc, :now)
ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at
RETURNING updated_at;

-- name: template_get
SELECT doc, updated_at FROM conveyor_templates WHERE name = :name;

-- name: template_delete
DELETE FROM conveyor_templates WHERE name = :name;

-- name: template_list
-- Keyset paging by name.
SELECT doc, updated_at FROM conveyor_templates WHERE name > :after ORDER BY name LIMIT :limit;
