-- Templates per locale (issue 14): one row per template, its locales and per-channel parts
-- as one JSON document, because every read wants the whole template (a renderer resolves
-- the locale chain over all of it) and a template is small. Additive: older nodes ignore
-- the table.
CREATE TABLE conveyor_templates (
    name TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
