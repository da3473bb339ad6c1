-- Flows (conveyor.flows): one row per job of a flow, and which job waits for which.
-- A waiting node keeps its message in `body` until the last node it waits for ends
-- (`pending` reaches 0); results stay here for the nodes waiting on them. `parents`
-- repeats the edges from a node, so recording an end reads no other table.
CREATE TABLE conveyor_flow_nodes (
    flow_id text NOT NULL,
    node integer NOT NULL,
    job_id uuid NOT NULL,
    task text NOT NULL,
    queue_id integer NOT NULL,
    queue text NOT NULL,
    body text,
    priority smallint NOT NULL DEFAULT 0,
    results text NOT NULL DEFAULT 'none',
    on_failure text NOT NULL DEFAULT 'fail',
    parents text NOT NULL DEFAULT '[]',  -- the nodes waiting for this one (JSON)
    state text NOT NULL,
    pending integer NOT NULL DEFAULT 0,
    result text,
    error text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (flow_id, node)
) WITH (fillfactor = 80);  -- a chord's parent row is updated once per child: room for HOT
CREATE INDEX conveyor_flow_nodes_job ON conveyor_flow_nodes (job_id);
CREATE INDEX conveyor_flow_nodes_expires ON conveyor_flow_nodes (expires_at);
CREATE TABLE conveyor_flow_edges (
    flow_id text NOT NULL,
    child integer NOT NULL,
    parent integer NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (flow_id, child, parent)
);
CREATE INDEX conveyor_flow_edges_parent ON conveyor_flow_edges (flow_id, parent, child);
CREATE INDEX conveyor_flow_edges_expires ON conveyor_flow_edges (expires_at);
