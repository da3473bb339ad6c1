-- PostgreSQL dialect of flows (conveyor.flows). The same names exist in ../sqlite/flows.sql.
-- An end runs as two array statements a round in one transaction (storage.flow_steps);
-- rows are locked in (flow_id, node) order so that concurrent ends cannot deadlock.

-- name: flow_node_insert
INSERT INTO conveyor_flow_nodes (flow_id, node, job_id, task, queue_id, queue, body,
                                 priority, results, on_failure, parents, state, pending,
                                 created_at, updated_at, expires_at)
SELECT $1, u.node, u.job_id, u.task, u.queue_id, u.queue, u.body, u.priority, u.results,
       u.on_failure, u.parents, u.state, u.pending, t.now, t.now, t.now + $2
FROM (SELECT COALESCE($3::bigint, conveyor_now_ms()) AS now) t,
     unnest($4::int[], $5::uuid[], $6::text[], $7::int[], $8::text[], $9::text[],
            $10::smallint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::int[])
         AS u(node, job_id, task, queue_id, queue, body, priority, results, on_failure,
              parents, state, pending);

-- name: flow_edge_insert
INSERT INTO conveyor_flow_edges (flow_id, child, parent, expires_at)
SELECT $1, u.child, u.parent, COALESCE($3::bigint, conveyor_now_ms()) + $2
FROM unnest($4::int[], $5::int[]) AS u(child, parent);

-- name: flow_node_end
-- Only nodes that have not ended yet: a job run twice ends once (a row a concurrent end
-- changed is checked again after its lock: READ COMMITTED's recheck). A waiting node ends
-- here when a child's failure fails it. The ends come sorted and unique (flow_steps) and,
-- under the plan pins (END_PLAN), are matched by one primary-key probe each in that order,
-- so the update locks its rows in (flow, node) order. One pass, no lock taken beforehand:
-- a chord child's end was a lock, a second probe and an update (two row writes); it is one.
UPDATE conveyor_flow_nodes n
SET state = CASE WHEN u.ok THEN 'succeeded' ELSE 'failed' END, result = u.result,
    error = u.error, body = NULL, updated_at = COALESCE($6::bigint, conveyor_now_ms())
FROM unnest($1::text[], $2::int[], $3::bool[], $4::text[], $5::text[])
         AS u(flow_id, node, ok, result, error)
WHERE n.flow_id = u.flow_id AND n.node = u.node AND n.state IN ('queued', 'waiting')
RETURNING n.flow_id, n.node, n.on_failure, n.parents;

-- name: flow_node_count
-- The last child's end (pending reaches 0) releases the node: it is queued, and its
-- message (body) is inserted in the same transaction. The SET expressions read the row as
-- it was before the update (after the lock: the latest committed version).
WITH locked AS (
    SELECT u.flow_id, u.node, u.n
    FROM unnest($1::text[], $2::int[], $3::int[]) AS u(flow_id, node, n)
    JOIN conveyor_flow_nodes n ON n.flow_id = u.flow_id AND n.node = u.node
    WHERE n.state = 'waiting'
    ORDER BY u.flow_id, u.node
    FOR UPDATE OF n
)
UPDATE conveyor_flow_nodes n
SET pending = greatest(n.pending - l.n, 0),
    state = CASE WHEN n.pending - l.n <= 0 THEN 'queued' ELSE n.state END,
    updated_at = COALESCE($4::bigint, conveyor_now_ms())
FROM locked l
WHERE n.flow_id = l.flow_id AND n.node = l.node AND n.state = 'waiting'
RETURNING n.state, n.queue_id, n.job_id::text, n.body, n.priority;

-- name: flow_results
-- What a node's job gets: the results of the nodes it waits for, in node order. Each child
-- is one primary-key probe (LATERAL): joined freely, a plan made before statistics on a
-- new chord's rows scanned the chord's nodes per child (78 s for 10,000 children).
SELECT c.state, c.result
FROM unnest(ARRAY(SELECT child FROM conveyor_flow_edges
                  WHERE flow_id = $1 AND parent = $2 ORDER BY child))
         WITH ORDINALITY AS k(child, ord)
CROSS JOIN LATERAL (SELECT n.state, n.result FROM conveyor_flow_nodes n
                    WHERE n.flow_id = $1 AND n.node = k.child) c
ORDER BY k.ord;

-- name: flow_children
-- Only in PostgreSQL: with flow_node_range, a dense set of children (a chord's) is read
-- by one range scan (storage.flow_steps.dense); SQLite's flow_results probes in-process.
SELECT child FROM conveyor_flow_edges WHERE flow_id = $1 AND parent = $2 ORDER BY child;

-- name: flow_node_range
-- Only in PostgreSQL: the nodes $2..$3 of a flow, in order (see flow_children): 20,000
-- consecutive primary-key entries in one index scan, where flow_results' probes took
-- 300 ms on a loaded machine.
SELECT node, state, result FROM conveyor_flow_nodes
WHERE flow_id = $1 AND node BETWEEN $2 AND $3
ORDER BY node;

-- name: flow_nodes
SELECT node, job_id::text, task, queue, state, on_failure, pending, result, error, created_at
FROM conveyor_flow_nodes
WHERE flow_id = $1 AND expires_at > COALESCE($2::bigint, conveyor_now_ms())
ORDER BY node;

-- name: flow_edges
SELECT child, parent FROM conveyor_flow_edges WHERE flow_id = $1 ORDER BY parent, child;

-- name: flow_of_job
SELECT flow_id FROM conveyor_flow_nodes
WHERE job_id = $1::uuid AND expires_at > COALESCE($2::bigint, conveyor_now_ms());

-- name: flow_node_expire
DELETE FROM conveyor_flow_nodes
WHERE ctid IN (SELECT ctid FROM conveyor_flow_nodes
               WHERE expires_at <= COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2);

-- name: flow_edge_expire
DELETE FROM conveyor_flow_edges
WHERE ctid IN (SELECT ctid FROM conveyor_flow_edges
               WHERE expires_at <= COALESCE($1::bigint, conveyor_now_ms()) LIMIT $2);

-- name: flow_node_of_jobs
-- The nodes (not ended yet) of jobs that will never end by a worker: cancelled while
-- queued, or moved to the dead-letter queue by the claim (maxReceiveCount). One probe of
-- the job_id index per id; plain jobs find nothing.
SELECT flow_id, node FROM conveyor_flow_nodes
WHERE job_id = ANY($1::uuid[]) AND state IN ('queued', 'waiting');
