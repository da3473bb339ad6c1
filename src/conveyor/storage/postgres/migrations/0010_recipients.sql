-- Recipients (issue 14): one row per person, their addresses, preferences and quiet hours
-- as JSON text. One row rather than a table per part, because every read wants the whole
-- person (the notify fan-out) and a bulk import of a million is then a million inserts,
-- not several million. Additive: older nodes ignore the table.
CREATE TABLE conveyor_recipients (
    id text PRIMARY KEY,
    timezone text NOT NULL,
    locale text NOT NULL,
    addresses text NOT NULL,
    preferences text NOT NULL,
    quiet_hours text,
    updated_at bigint NOT NULL
);
