-- Read functions for the server (sql/reads.sql): workers, tasks, runs, workflows, events, children, finished runs.
-- Every one is scoped to its tenant argument.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;
-- Everything happens in a tenant of its own ("reads"), so rows other tests left behind do not show.
CREATE FUNCTION pg_temp.work(q text, output jsonb DEFAULT '{}', fail boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE t record; tn uuid := '00000000-0000-7000-8000-00000000bbbb';
BEGIN
    SELECT * INTO t FROM hatchet.dequeue(q, 'sql-worker', tenant_id => tn);
    IF NOT FOUND THEN RETURN NULL; END IF;
    IF fail THEN PERFORM hatchet.fail(t.task_id, t.retry_count, 'boom', retryable => false, tenant_id => tn);
    ELSE PERFORM hatchet.complete(t.task_id, t.retry_count, output, tenant_id => tn); END IF;
    RETURN t.input;
END $$;

BEGIN;
INSERT INTO hatchet.tenants (tenant_id, name) VALUES ('00000000-0000-7000-8000-00000000aaaa', 'other'),
                                                   ('00000000-0000-7000-8000-00000000bbbb', 'reads');
\set t '00000000-0000-7000-8000-00000000bbbb'
-- Workers.
SELECT hatchet.register_worker('w-a', ARRAY['q:b', 'q:a'], '{"default": 3}', '{"region": "eu"}', tenant_id => :'t',
                               worker_id => '00000000-0000-7000-8000-00000000000a') IS NOT NULL AS registered;
SELECT hatchet.register_worker('w-x', ARRAY['q:a'], '{"default": 1}', tenant_id => '00000000-0000-7000-8000-00000000aaaa',
                               worker_id => '00000000-0000-7000-8000-00000000000f') IS NOT NULL AS registered;
SELECT name, is_active, is_paused, labels, actions, slots, used FROM hatchet.list_workers(:'t');
SELECT name, actions FROM hatchet.worker('00000000-0000-7000-8000-00000000000a', :'t');
SELECT count(*) AS foreign_worker FROM hatchet.worker('00000000-0000-7000-8000-00000000000f', :'t');
SELECT count(*) AS unknown_worker FROM hatchet.worker('00000000-0000-7000-8000-0000000000ff', :'t');

-- A workflow with a parent that spawns a child run; an event that triggers it.
SELECT hatchet.register_workflow('{"name": "parent", "description": "spawns", "event_triggers": ["go"], "sticky": "SOFT",
    "tasks": [{"readable_id": "a", "action": "q:a"}, {"readable_id": "b", "action": "q:b", "parents": ["a"]}]}', :'t')
    IS NOT NULL AS registered;
SELECT hatchet.register_workflow('{"name": "other-wf", "tasks": [{"readable_id": "x"}]}',
                                 tenant_id => '00000000-0000-7000-8000-00000000aaaa') IS NOT NULL AS registered;
SELECT name, is_paused, version_id IS NOT NULL AS has_version, event_triggers, cron_triggers, description, sticky
FROM hatchet.list_workflows(tenant_id => :'t');
SELECT count(*) AS by_name FROM hatchet.list_workflows('parent', tenant_id => :'t');
SELECT count(*) AS other_tenants_by_name FROM hatchet.list_workflows('other-wf', tenant_id => :'t');
SELECT hatchet.run_workflow('parent', '{"n": 1}', '{"team": "x"}', tenant_id => :'t') AS run \gset
SELECT id AS a_task FROM hatchet.tasks WHERE run_id = :'run' AND readable_id = 'a' \gset
SELECT hatchet.run_workflow('parent', '{"n": 2}', parent_task_id => :'a_task', child_index => 0,
                            tenant_id => :'t') AS child \gset
SELECT hatchet.push_event('go', '{"n": 3}', tenant_id => :'t') AS event \gset

-- Runs: one, the task view, children counts, the list with filters.
SELECT status, input, additional_metadata, workflow_name, parent_task_id IS NULL AS root, triggered_by, children
FROM hatchet.run(:'run', :'t');
SELECT status, workflow_name, parent_task_id = :'a_task' AS spawned_by_a FROM hatchet.run(:'child', :'t');
SELECT hatchet.enqueue('solo', tenant_id => :'t') AS solo \gset
SELECT status, workflow_name, triggered_by FROM hatchet.run(:'solo', :'t');
SELECT count(*) AS unknown_run FROM hatchet.run('00000000-0000-7000-8000-0000000000ff', :'t');
SELECT run_id = :'run' AS right_run, readable_id, queue, status FROM hatchet.task(:'a_task', :'t');
SELECT task_id = :'a_task' AS from_a, children FROM hatchet.run_children(:'run', :'t');
SELECT input, status, total FROM hatchet.list_runs(tenant_id => :'t', include_payloads => true) ORDER BY input::text;
-- Payloads are left out unless asked for.
SELECT count(*) AS runs, count(input) AS with_input FROM hatchet.list_runs(tenant_id => :'t');
SELECT input, total FROM hatchet.list_runs("limit" => 1, "offset" => 1, tenant_id => :'t', include_payloads => true);
-- Keyset paging: each page starts after the last id of the one before; together they are the offset pages.
SELECT id AS page1 FROM hatchet.list_runs("limit" => 1, tenant_id => :'t') \gset
SELECT id AS page2 FROM hatchet.list_runs("limit" => 1, before => :'page1', tenant_id => :'t') \gset
SELECT :'page2' = (SELECT id FROM hatchet.list_runs("limit" => 1, "offset" => 1, tenant_id => :'t')) AS second_page,
       (SELECT array_agg(id ORDER BY created_at DESC, id DESC) FROM hatchet.list_runs(before => :'page2', tenant_id => :'t'))
       = (SELECT array_agg(id ORDER BY created_at DESC, id DESC) FROM hatchet.list_runs("offset" => 2, tenant_id => :'t')) AS rest;
SELECT input FROM hatchet.list_runs(metadata => '{"team": "x"}', tenant_id => :'t', include_payloads => true);
SELECT input FROM hatchet.list_runs(parent_task => :'a_task', tenant_id => :'t', include_payloads => true);
SELECT input FROM hatchet.list_runs(event_id => :'event', tenant_id => :'t', include_payloads => true);
SELECT input FROM hatchet.list_runs(workflow_ids => ARRAY(SELECT id FROM hatchet.list_workflows('parent', tenant_id => :'t')),
                                    tenant_id => :'t', include_payloads => true) ORDER BY input::text;
SELECT count(*) AS in_the_future FROM hatchet.list_runs(since => now() + interval '1 hour', tenant_id => :'t');
-- The worker filter reads the timeline: runs whose tasks were assigned to the worker.
SELECT right(worker_id::text, 1) AS worker, readable_id FROM hatchet.assign(max_tasks => 1, tenant_id => :'t');
SELECT input FROM hatchet.list_runs(worker_id => '00000000-0000-7000-8000-00000000000a', tenant_id => :'t',
                                    include_payloads => true);
SELECT hatchet.running_attempt(task_id, :'t') AS attempt FROM hatchet.running WHERE tenant_id = :'t';
SELECT hatchet.running_attempt(:'solo', :'t') IS NULL AS not_running;

-- Finished runs: only the finished ones among the ids, one row per task with output or error.
SELECT hatchet.complete(task_id, retry_count, '{"a": 1}', :'t') FROM hatchet.running WHERE tenant_id = :'t';
SELECT pg_temp.work('q:b', '{"b": 2}') IS NOT NULL AS b_ran;
SELECT pg_temp.work('solo', fail => true) IS NOT NULL AS solo_failed;
SELECT run_id = :'run' AS is_run, run_status, readable_id, status, output, error
FROM hatchet.finished_runs(ARRAY[:'run', :'child', :'solo', '00000000-0000-7000-8000-0000000000ff', NULL]::uuid[], :'t')
ORDER BY run_status DESC, readable_id;
SELECT status, total FROM hatchet.list_runs(statuses => ARRAY['COMPLETED'], tenant_id => :'t');

-- Events with the runs they triggered.
SELECT key, payload, jsonb_array_length(runs) AS runs, runs -> 0 ->> 'status' AS run_status, total
FROM hatchet.list_events(tenant_id => :'t', include_payloads => true);
SELECT key, payload FROM hatchet.list_events(tenant_id => :'t');
SELECT count(*) AS before_the_only_one FROM hatchet.list_events(before => (SELECT id FROM hatchet.list_events(tenant_id => :'t')), tenant_id => :'t');
SELECT count(*) AS other_key FROM hatchet.list_events(keys => ARRAY['nope'], tenant_id => :'t');

-- Another tenant sees none of it.
SELECT (SELECT count(*) FROM hatchet.list_runs(tenant_id => '00000000-0000-7000-8000-00000000aaaa')) AS runs,
       (SELECT count(*) FROM hatchet.run(:'run', '00000000-0000-7000-8000-00000000aaaa')) AS run,
       (SELECT count(*) FROM hatchet.task(:'a_task', '00000000-0000-7000-8000-00000000aaaa')) AS task,
       (SELECT count(*) FROM hatchet.list_events(tenant_id => '00000000-0000-7000-8000-00000000aaaa')) AS events,
       (SELECT count(*) FROM hatchet.finished_runs(ARRAY[:'run'::uuid], '00000000-0000-7000-8000-00000000aaaa')) AS finished,
       (SELECT count(*) FROM hatchet.run_children(:'run', '00000000-0000-7000-8000-00000000aaaa')) AS children,
       (SELECT name FROM hatchet.list_workers('00000000-0000-7000-8000-00000000aaaa')) AS its_worker;

-- Bad input: NULL ids (22004), bad paging and statuses (22023).
SELECT pg_temp.err($$SELECT * FROM hatchet.worker(NULL)$$) AS null_worker;
SELECT pg_temp.err($$SELECT * FROM hatchet.run(NULL)$$) AS null_run;
SELECT pg_temp.err($$SELECT * FROM hatchet.task(NULL)$$) AS null_task;
SELECT pg_temp.err($$SELECT hatchet.running_attempt(NULL)$$) AS null_attempt;
SELECT pg_temp.err($$SELECT * FROM hatchet.finished_runs(NULL)$$) AS null_runs;
SELECT pg_temp.err($$SELECT * FROM hatchet.run_children(NULL)$$) AS null_children;
SELECT pg_temp.err($$SELECT * FROM hatchet.list_runs("limit" => 0)$$) AS zero_limit;
SELECT pg_temp.err($$SELECT * FROM hatchet.list_runs("offset" => -1)$$) AS negative_offset;
SELECT pg_temp.err($$SELECT * FROM hatchet.list_runs(statuses => ARRAY['DONE'])$$) AS bad_status;
SELECT pg_temp.err($$SELECT * FROM hatchet.list_runs(metadata => '[1]')$$) AS bad_metadata;
SELECT pg_temp.err($$SELECT * FROM hatchet.list_events("limit" => 1001)$$) AS big_limit;
SELECT pg_temp.err($$SELECT * FROM hatchet.list_runs(include_payloads => NULL)$$) AS null_payloads;
ROLLBACK;

-- Bounded lists: matches are counted up to 10,000 (10,001 says "more"), and a page's payloads must fit in 16 MiB.
BEGIN;
SELECT hatchet.create_tenant('bounded') AS b \gset
SELECT hatchet.register_workflow('{"name": "bulk", "tasks": [{"readable_id": "x"}]}', :'b') IS NOT NULL AS registered;
SELECT count(hatchet.run_workflow('bulk', tenant_id => :'b')) AS started FROM generate_series(1, 10005);
SELECT count(*) AS page, min(total) AS total FROM hatchet.list_runs(tenant_id => :'b');
SELECT count(*) AS last_page, min(total) AS total FROM hatchet.list_runs("limit" => 10, "offset" => 10000, tenant_id => :'b');
SELECT hatchet.run_workflow('bulk', jsonb_build_object('blob', repeat(md5(i::text), 100000)), tenant_id => :'b')
       IS NOT NULL AS big
FROM generate_series(1, 6) i;
SELECT count(*) AS without_payloads FROM hatchet.list_runs("limit" => 6, tenant_id => :'b');
SELECT count(*) AS five_fit FROM hatchet.list_runs("limit" => 5, tenant_id => :'b', include_payloads => true);
SELECT pg_temp.err($$SELECT * FROM hatchet.list_runs("limit" => 6, tenant_id => (SELECT tenant_id FROM hatchet.tenants WHERE name = 'bounded'), include_payloads => true)$$) AS six_do_not;
ROLLBACK;
