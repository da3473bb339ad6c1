-- SQLite dialect of flows (conveyor.flows). The same names exist in ../postgres/flows.sql.
-- Writes run inside BEGIN IMMEDIATE (one writer), so the steps of an end (storage.flow_steps)
-- see no other writer in between. A batch travels as one JSON array (json_each).

-- name: flow_node_insert
INSERT INTO conveyor_flow_nodes (flow_id, node, job_id, task, queue_id, queue, body,
                                 priority, results, on_failure, parents, state, pending,
                                 created_at, updated_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: flow_edge_insert
INSERT INTO conveyor_flow_edges (flow_id, child, parent, expires_at) VALUES (?, ?, ?, ?);

-- name: flow_node_end
-- Only nodes that have not ended yet: a job run twice ends once. A waiting node ends here
-- when a child's failure fails it. :ends is [{flow_id, node, ok, result, error}].
UPDATE conveyor_flow_nodes AS n
SET state = CASE WHEN j.value ->> 'ok' THEN 'succeeded' ELSE 'failed' END,
    result = j.value ->> 'result', error = j.value ->> 'error', body = NULL,
    updated_at = :now
FROM json_each(:ends) AS j
WHERE n.flow_id = j.value ->> 'flow_id' AND n.node = j.value ->> 'node'
  AND n.state IN ('queued', 'waiting')
RETURNING flow_id, node, on_failure, parents;

-- name: flow_node_count
-- The last child's end (pending reaches 0) releases the node: it is queued, and its
-- message (body) is inserted in the same transaction. The SET expressions read the row as
-- it was before the update. :counts is [{flow_id, node, n}].
UPDATE conveyor_flow_nodes AS n
SET pending = max(n.pending - (j.value ->> 'n'), 0),
    state = CASE WHEN n.pending - (j.value ->> 'n') <= 0 THEN 'queued' ELSE n.state END,
    updated_at = :now
FROM json_each(:counts) AS j
WHERE n.flow_id = j.value ->> 'flow_id' AND n.node = j.value ->> 'node'
  AND n.state = 'waiting'
RETURNING state, queue_id, job_id, body, priority;

-- name: flow_results
-- What a node's job gets: the results of the nodes it waits for, in node order.
SELECT c.state, c.result
FROM conveyor_flow_edges e
JOIN conveyor_flow_nodes c ON c.flow_id = e.flow_id AND c.node = e.child
WHERE e.flow_id = :flow_id AND e.parent = :node
ORDER BY e.child;

-- name: flow_nodes
SELECT node, job_id, task, queue, state, on_failure, pending, result, error, created_at
FROM conveyor_flow_nodes
WHERE flow_id = :flow_id AND expires_at > :now
ORDER BY node;

-- name: flow_edges
SELECT child, parent FROM conveyor_flow_edges WHERE flow_id = :flow_id ORDER BY parent, child;

-- name: flow_of_job
SELECT flow_id FROM conveyor_flow_nodes WHERE job_id = :job_id AND expires_at > :now;

-- name: flow_node_expire
DELETE FROM conveyor_flow_nodes
WHERE rowid IN (SELECT rowid FROM conveyor_flow_nodes WHERE expires_at <= :now LIMIT :limit);

-- name: flow_edge_expire
DELETE FROM conveyor_flow_edges
WHERE rowid IN (SELECT rowid FROM conveyor_flow_edges WHERE expires_at <= :now LIMIT :limit);

-- name: flow_node_of_jobs
-- The nodes (not ended yet) of jobs that will never end by a worker: cancelled while
-- queued, or moved to the dead-letter queue by a receive (maxReceiveCount). :ids is a JSON
-- array of job ids; plain jobs find nothing.
SELECT flow_id, node FROM conveyor_flow_nodes
WHERE job_id IN (SELECT value FROM json_each(:ids)) AND state IN ('queued', 'waiting');
