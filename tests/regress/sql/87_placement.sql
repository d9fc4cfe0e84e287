-- Placement of workflow runs: a trigger's desired worker (a child spawned with sticky=True) and the workflow-level
-- sticky strategy (SOFT / HARD: later tasks of a run go to the worker that ran its first task).
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;
-- Assign everything that can run and complete it at once; returns (readable id, worker letter) pairs.
CREATE FUNCTION pg_temp.step() RETURNS TABLE (task text, worker text) LANGUAGE plpgsql AS $$
DECLARE a record;
BEGIN
    FOR a IN SELECT * FROM hatchet.assign(max_tasks => 100) ORDER BY readable_id LOOP
        PERFORM hatchet.complete(a.task_id, a.retry_count, '{}');
        task := a.readable_id; worker := right(a.worker_id::text, 1);
        RETURN NEXT;
    END LOOP;
END $$;

BEGIN;
SELECT hatchet.register_workflow(format('{"name": "chain-%s", "sticky": "%s", "tasks": [
    {"readable_id": "first", "action": "chain:first"}, {"readable_id": "second", "action": "chain:second", "parents": ["first"]},
    {"readable_id": "third", "action": "chain:third", "parents": ["second"]}]}', lower(s), s)::jsonb) IS NOT NULL AS registered
FROM unnest(ARRAY['SOFT', 'HARD']) s;
SELECT hatchet.register_workflow('{"name": "chain-free", "tasks": [
    {"readable_id": "first", "action": "chain:first"}, {"readable_id": "second", "action": "chain:second", "parents": ["first"]},
    {"readable_id": "third", "action": "chain:third", "parents": ["second"]}]}') IS NOT NULL AS registered;
-- Worker a has one slot, b has many: without stickiness ties go to the worker with most free slots (b).
SELECT hatchet.register_worker('w-a', ARRAY['chain:first', 'chain:second', 'chain:third'], '{"default": 1}',
                               worker_id => '00000000-0000-7000-8000-00000000000a') IS NOT NULL AS a;
SELECT hatchet.register_worker('w-b', ARRAY['chain:first', 'chain:second', 'chain:third'], '{"default": 10}',
                               worker_id => '00000000-0000-7000-8000-00000000000b') IS NOT NULL AS b;

-- HARD sticky: the first task runs on a (the only worker up), every later task must run there too.
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', true);
SELECT hatchet.run_workflow('chain-hard') AS hard \gset
SELECT * FROM pg_temp.step();
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', false);
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.step();
SELECT hatchet.run_status(:'hard');
-- The later tasks carry the placement (HARD, worker a) on their rows.
SELECT readable_id, sticky, right(desired_worker_id::text, 1) AS desired FROM hatchet.tasks
WHERE run_id = :'hard' ORDER BY readable_id;

-- HARD sticky with the first task's worker busy: the next task waits rather than running elsewhere.
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', true);
SELECT hatchet.run_workflow('chain-hard') AS hard2 \gset
SELECT * FROM pg_temp.step();
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', false);
SELECT hatchet.enqueue('chain:first', '{"blocker": true}', desired_worker_id => '00000000-0000-7000-8000-00000000000a',
                       sticky => 'HARD') AS blocker \gset
SELECT right(worker_id::text, 1) AS worker, coalesce(readable_id, 'blocker') AS task
FROM hatchet.assign() ORDER BY readable_id NULLS FIRST;
SELECT readable_id, status FROM hatchet.run_tasks(:'hard2') ORDER BY readable_id;
SELECT hatchet.complete(:'blocker', 0);
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.step();
SELECT hatchet.run_status(:'hard2');

-- SOFT sticky: later tasks prefer a even though b has more free slots.
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', true);
SELECT hatchet.run_workflow('chain-soft') AS soft \gset
SELECT * FROM pg_temp.step();
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', false);
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.step();
-- ... but SOFT falls back to another worker when a has no free slot (a HARD-pinned task takes it first).
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', true);
SELECT hatchet.run_workflow('chain-soft') AS soft2 \gset
SELECT * FROM pg_temp.step();
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', false);
SELECT hatchet.enqueue('chain:first', '{"blocker": true}', desired_worker_id => '00000000-0000-7000-8000-00000000000a',
                       sticky => 'HARD') AS blocker2 \gset
SELECT right(worker_id::text, 1) AS worker, coalesce(readable_id, 'blocker') AS task
FROM hatchet.assign() ORDER BY readable_id NULLS FIRST;
SELECT hatchet.complete(task_id, retry_count) FROM hatchet.running WHERE queue LIKE 'chain:%' ORDER BY task_id;
SELECT * FROM pg_temp.step();
SELECT hatchet.run_status(:'soft2');

-- Not sticky: the later tasks go where there is most room (b).
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', true);
SELECT hatchet.run_workflow('chain-free') AS free \gset
SELECT * FROM pg_temp.step();
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', false);
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.step();
SELECT hatchet.run_status(:'free');

-- A trigger's desired worker (sticky=True child): the run's tasks prefer it (SOFT), the first and the later ones.
SELECT hatchet.run_workflow('chain-free', desired_worker_id => '00000000-0000-7000-8000-00000000000a') AS child \gset
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.step();
SELECT * FROM pg_temp.step();
SELECT readable_id, sticky, right(desired_worker_id::text, 1) AS desired FROM hatchet.tasks
WHERE run_id = :'child' ORDER BY readable_id;
-- In a HARD sticky workflow the desired worker is required from the first task on.
SELECT hatchet.run_workflow('chain-hard', desired_worker_id => '00000000-0000-7000-8000-00000000000a') AS hardchild \gset
SELECT readable_id, sticky, right(desired_worker_id::text, 1) AS desired FROM hatchet.tasks
WHERE run_id = :'hardchild' ORDER BY readable_id;
SELECT hatchet.cancel_run(:'hardchild');

-- A call for other workers only (the server assigns to the workers whose completions it just applied) leaves a
-- SOFT task to its desired worker while that one has room, and takes it when it has none.
SELECT hatchet.run_workflow('chain-free', desired_worker_id => '00000000-0000-7000-8000-00000000000a') AS waits \gset
SELECT count(*) AS taken_by_b FROM hatchet.assign(worker_ids => ARRAY['00000000-0000-7000-8000-00000000000b'::uuid]);
SELECT right(worker_id::text, 1) AS worker, readable_id FROM hatchet.assign();
SELECT hatchet.enqueue('chain:first', '{"blocker": true}', desired_worker_id => '00000000-0000-7000-8000-00000000000a',
                       sticky => 'HARD') AS blocker3 \gset
SELECT hatchet.complete(task_id, retry_count) FROM hatchet.running WHERE task_id <> :'blocker3' AND queue LIKE 'chain:%';
SELECT right(worker_id::text, 1) AS worker, coalesce(readable_id, 'blocker') AS task
FROM hatchet.assign(worker_ids => ARRAY['00000000-0000-7000-8000-00000000000a'::uuid]);
SELECT right(worker_id::text, 1) AS worker, readable_id
FROM hatchet.assign(worker_ids => ARRAY['00000000-0000-7000-8000-00000000000b'::uuid]);
SELECT hatchet.cancel_run(:'waits');
SELECT hatchet.cancel(:'blocker3');

-- Bad input: an unknown desired worker (42704), another tenant's worker (42704), a bad sticky strategy (22023);
-- nothing is created.
SELECT count(*) AS runs_before FROM hatchet.runs \gset
SELECT pg_temp.err($$SELECT hatchet.run_workflow('chain-free', desired_worker_id => '00000000-0000-7000-8000-0000000000ff')$$);
INSERT INTO hatchet.tenants (tenant_id, name) VALUES ('00000000-0000-7000-8000-00000000aaaa', 'other');
SELECT hatchet.register_workflow('{"name": "chain-free", "tasks": [{"readable_id": "first", "action": "chain:first"}]}',
                                 tenant_id => '00000000-0000-7000-8000-00000000aaaa') IS NOT NULL AS other_registered;
SELECT pg_temp.err($$SELECT hatchet.run_workflow('chain-free', tenant_id => '00000000-0000-7000-8000-00000000aaaa',
                                                 desired_worker_id => '00000000-0000-7000-8000-00000000000a')$$);
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad-sticky", "sticky": "STICKIEST", "tasks": [{"readable_id": "x"}]}')$$);
SELECT count(*) - :runs_before AS new_runs FROM hatchet.runs;
SELECT count(*) AS bad_sticky_workflows FROM hatchet.workflows WHERE name = 'bad-sticky';
ROLLBACK;
