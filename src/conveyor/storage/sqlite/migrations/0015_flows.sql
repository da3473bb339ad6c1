-- Flows (conveyor.flows): one row per job of a flow, and which job waits for which.
-- A waiting node keeps its message in `body` until the last node it waits for ends
-- (`pending` reaches 0); results stay here for the nodes waiting on them. `parents`
-- repeats the edges from a node, so recording an end reads no other table.
CREATE TABLE conveyor_flow_nodes (
    flow_id TEXT NOT NULL,
    node INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    task TEXT NOT NULL,
    queue_id INTEGER NOT NULL,
    queue TEXT NOT NULL,
    body TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    results TEXT NOT NULL DEFAULT 'none',
    on_failure TEXT NOT NULL DEFAULT 'fail',
    parents TEXT NOT NULL DEFAULT '[]',  -- the nodes waiting for this one (JSON)
    state TEXT NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (flow_id, node)
);
CREATE INDEX conveyor_flow_nodes_job ON conveyor_flow_nodes (job_id);
CREATE INDEX conveyor_flow_nodes_expires ON conveyor_flow_nodes (expires_at);
CREATE TABLE conveyor_flow_edges (
    flow_id TEXT NOT NULL,
    child INTEGER NOT NULL,
    parent INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (flow_id, child, parent)
);
CREATE INDEX conveyor_flow_edges_parent ON conveyor_flow_edges (flow_id, parent, child);
CREATE INDEX conveyor_flow_edges_expires ON conveyor_flow_edges (expires_at);
