-- DAG runs: root tasks queued at once, a child queued in the transaction that completes its last parent, with the
-- run input and its parents' outputs; run status aggregated from the tasks; timeline of the run.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;
-- A SQL worker: claim one task of a queue, complete it with an output, return what it was given.
CREATE FUNCTION pg_temp.work(q text, output jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
    SELECT * INTO t FROM hatchet.dequeue(q, 'sql-worker');
    IF NOT FOUND THEN RETURN NULL; END IF;
    PERFORM hatchet.complete(t.task_id, t.retry_count, output);
    RETURN t.input;
END $$;
CREATE FUNCTION pg_temp.ready(q text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM hatchet.ready_queue WHERE queue = q $$;

-- A diamond: a -> (b, c) -> d.
SELECT hatchet.register_workflow('{"name": "diamond", "tasks": [
    {"readable_id": "a"}, {"readable_id": "b", "parents": ["a"]}, {"readable_id": "c", "parents": ["a"]},
    {"readable_id": "d", "parents": ["b", "c"]}]}') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('diamond', '{"order": 42}', '{"source": "test"}') AS run \gset
SELECT hatchet.run_status(:'run');
SELECT readable_id, status, queue FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
-- Only the root is queued; the children wait in hatchet.matches.
SELECT pg_temp.ready('diamond:a') AS a, pg_temp.ready('diamond:b') AS b, pg_temp.ready('diamond:d') AS d,
       (SELECT count(*) FROM hatchet.matches WHERE run_id = :'run') AS pending;
-- The root gets the V1StepRunData shape the SDKs read; its metadata is the run's.
SELECT input, additional_metadata FROM hatchet.dequeue('diamond:a', 'w1') \gset root_
SELECT :'root_input' AS root_input, :'root_additional_metadata' AS root_metadata;
SELECT hatchet.run_status(:'run');
SELECT hatchet.complete(t.id, 0, '{"a": 1}') FROM hatchet.tasks t WHERE t.run_id = :'run' AND t.readable_id = 'a';
-- Completing a queued both b and c, in the same transaction.
SELECT readable_id, status FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
SELECT hatchet.run_status(:'run');
SELECT pg_temp.work('diamond:b', '{"b": 2}') AS b_input;
-- d waits for c.
SELECT pg_temp.ready('diamond:d') AS d_ready, (SELECT count(*) FROM hatchet.matches WHERE run_id = :'run') AS pending;
SELECT pg_temp.work('diamond:c', '{"c": 3}') AS c_input;
SELECT pg_temp.work('diamond:d', '{"d": 4}') AS d_input;
SELECT hatchet.run_status(:'run');
SELECT readable_id, status, retry_count, output, error FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
-- The timeline: every task's events (a child's QUEUED is when it was really queued, after its parents completed;
-- a task's inserted_at has millisecond precision).
SELECT readable_id, event_type, worker FROM hatchet.run_events(:'run') ORDER BY readable_id, created_at;
SELECT bool_and(c.inserted_at >= date_trunc('milliseconds', p.created_at)) AS children_queued_after_parents
FROM hatchet.tasks c
JOIN hatchet.task_events p ON p.event_type = 'COMPLETED'
JOIN hatchet.tasks pt ON pt.id = p.task_id AND pt.run_id = c.run_id
WHERE c.run_id = :'run' AND (c.readable_id, pt.readable_id) IN (('b', 'a'), ('c', 'a'), ('d', 'b'), ('d', 'c'));
SELECT count(*) AS matches_left FROM hatchet.matches WHERE run_id = :'run';

-- A fan-in of 3: p1, p2, p3 -> join. The join runs only after the third parent, whatever the order.
SELECT hatchet.register_workflow('{"name": "fanin", "tasks": [
    {"readable_id": "p1"}, {"readable_id": "p2"}, {"readable_id": "p3"},
    {"readable_id": "join", "parents": ["p1", "p2", "p3"], "retries": 1}]}') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('fanin', '{"n": 3}') AS run \gset
SELECT pg_temp.ready('fanin:p1') + pg_temp.ready('fanin:p2') + pg_temp.ready('fanin:p3') AS roots_ready;
SELECT pg_temp.work('fanin:p3', '{"v": 3}') IS NOT NULL AS p3_done, pg_temp.ready('fanin:join') AS join_ready;
SELECT pg_temp.work('fanin:p1', '{"v": 1}') IS NOT NULL AS p1_done, pg_temp.ready('fanin:join') AS join_ready;
SELECT pg_temp.work('fanin:p2', '{"v": 2}') IS NOT NULL AS p2_done, pg_temp.ready('fanin:join') AS join_ready;
-- A parent output that is empty ({}), and a task that fails once then succeeds: the join still runs once.
SELECT task_id AS j, input FROM hatchet.dequeue('fanin:join', 'w1') \gset
SELECT :'input' AS join_input;
SELECT hatchet.fail(:'j', 0, 'flaky');
SELECT hatchet.run_status(:'run') AS while_retrying;
SELECT pg_temp.work('fanin:join', '{"sum": 6}') IS NOT NULL AS join_done;
SELECT hatchet.run_status(:'run');
SELECT readable_id, status, retry_count, output FROM hatchet.run_tasks(:'run') ORDER BY readable_id;

-- Parents that complete in one batch (complete_many) advance the run once.
SELECT hatchet.run_workflow('fanin', '{"n": 0}') AS run2 \gset
WITH claimed AS (
    SELECT d.task_id, d.retry_count FROM (VALUES ('fanin:p1'), ('fanin:p2'), ('fanin:p3')) q(name)
    CROSS JOIN LATERAL hatchet.dequeue(q.name, 'w1') d)
SELECT hatchet.complete_many(array_agg(task_id), array_agg(retry_count)) FROM claimed;
SELECT pg_temp.ready('fanin:join') AS join_ready, hatchet.run_status(:'run2');
SELECT pg_temp.work('fanin:join') AS join_input;

-- A single-task workflow: its task is the run (same id), as in Hatchet.
SELECT hatchet.register_workflow('{"name": "single", "tasks": [{"readable_id": "only"}], "default_priority": 2}')
    IS NOT NULL AS registered;
SELECT hatchet.run_workflow('single', '{"k": "v"}') AS run \gset
SELECT t.id = :'run' AS task_is_run, t.priority, t.queue FROM hatchet.tasks t WHERE t.run_id = :'run';
SELECT hatchet.task_status(:'run'), hatchet.run_status(:'run');
SELECT pg_temp.work('single:only', '{"done": true}');
SELECT hatchet.run_status(:'run');
-- An explicit priority overrides the workflow's default_priority.
SELECT hatchet.run_workflow('single', priority => 3) AS run \gset
SELECT priority FROM hatchet.runs WHERE id = :'run';
SELECT priority FROM hatchet.dequeue('single:only');

-- A task enqueued on its own is a run of one task: run_status and run_tasks work with its id.
SELECT hatchet.enqueue('standalone', '{"x": 1}') AS t \gset
SELECT hatchet.run_status(:'t');
SELECT pg_temp.work('standalone') IS NOT NULL AS done;
SELECT hatchet.run_status(:'t'), (SELECT count(*) FROM hatchet.run_tasks(:'t')) AS tasks;

-- Child runs are deduplicated by (parent task, child key or index): a parent retry spawning again gets the same run.
SELECT hatchet.enqueue('parent_q') AS parent \gset
SELECT hatchet.run_workflow('single', '{"i": 0}', parent_task_id => :'parent', child_index => 0) AS c0 \gset
SELECT hatchet.run_workflow('single', '{"i": 0}', parent_task_id => :'parent', child_index => 0) = :'c0' AS same_child,
       hatchet.run_workflow('single', '{"i": 1}', parent_task_id => :'parent', child_index => 1) <> :'c0' AS other_index,
       hatchet.run_workflow('single', '{}', parent_task_id => :'parent', child_key => 'k') =
       hatchet.run_workflow('single', '{}', parent_task_id => :'parent', child_key => 'k') AS same_key;
SELECT count(*) AS child_runs FROM hatchet.runs WHERE parent_task_id = :'parent';

-- Clean up the queues this file filled.
SELECT count(*) >= 0 AS cleaned FROM hatchet.ready_queue r, LATERAL hatchet.cancel(r.task_id)
WHERE r.queue IN ('single:only', 'parent_q');
