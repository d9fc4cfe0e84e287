-- hatchet.replay_tasks: a new attempt of finished tasks and runs; in a DAG, everything downstream runs again.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;
-- Claim one task of a queue as a SQL worker and complete it with an output, or fail it; returns its input.
CREATE FUNCTION pg_temp.work(q text, output jsonb DEFAULT '{}', fail boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
    SELECT * INTO t FROM hatchet.dequeue(q, 'sql-worker');
    IF NOT FOUND THEN RETURN NULL; END IF;
    IF fail THEN PERFORM hatchet.fail(t.task_id, t.retry_count, 'boom', retryable => false);
    ELSE PERFORM hatchet.complete(t.task_id, t.retry_count, output); END IF;
    RETURN t.input;
END $$;

BEGIN;
-- A task enqueued on its own: failed, replayed, runs again as attempt 1 (ahead of user work, priority 4).
SELECT hatchet.enqueue('solo', '{"x": 1}') AS solo \gset
SELECT pg_temp.work('solo', fail => true) AS solo_input;
SELECT hatchet.task_status(:'solo');
SELECT task_id = :'solo' AS same_task, run_id = :'solo' AS own_run, retry_count FROM hatchet.replay_tasks(ARRAY[:'solo'::uuid]);
SELECT hatchet.task_status(:'solo'), (SELECT priority FROM hatchet.ready_queue WHERE task_id = :'solo') AS priority;
-- Still queued: replaying it again does nothing.
SELECT count(*) AS replayed_while_queued FROM hatchet.replay_tasks(ARRAY[:'solo'::uuid]);
SELECT retry_count FROM hatchet.dequeue('solo', 'w');
SELECT hatchet.complete(:'solo', 1, '{"ok": true}');
SELECT event_type, retry_count, reason FROM hatchet.task_events(:'solo') WHERE event_type <> 'ASSIGNED';

-- A DAG a -> b -> c: b fails, so c is cancelled and the run FAILED.
SELECT hatchet.register_workflow('{"name": "chain", "tasks": [
    {"readable_id": "a"}, {"readable_id": "b", "parents": ["a"]}, {"readable_id": "c", "parents": ["b"]}]}')
    IS NOT NULL AS registered;
SELECT hatchet.run_workflow('chain', '{"n": 1}') AS run \gset
SELECT pg_temp.work('chain:a', '{"a": 1}') IS NOT NULL AS a_ran;
SELECT pg_temp.work('chain:b', fail => true) IS NOT NULL AS b_failed;
SELECT hatchet.run_status(:'run');
SELECT readable_id, status, retry_count FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
-- Replaying task b: b runs again now, c waits for it; a is left as it was.
SELECT hatchet.replay_tasks(ARRAY[(SELECT id FROM hatchet.tasks WHERE run_id = :'run' AND readable_id = 'b')]) IS NOT NULL AS replayed;
SELECT hatchet.run_status(:'run');
SELECT readable_id, status, retry_count FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
SELECT pg_temp.work('chain:b', '{"b": 2}') -> 'parents' AS b_sees_parents;
-- c runs again, as a new attempt of the same task, and sees b's new output.
SELECT readable_id, status, retry_count FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
SELECT pg_temp.work('chain:c', '{"c": 3}') -> 'parents' AS c_sees_parents;
SELECT hatchet.run_status(:'run');
SELECT readable_id, status, retry_count, output FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
SELECT count(*) AS tasks_in_run FROM hatchet.tasks WHERE run_id = :'run';

-- Replaying the whole (completed) run: the root runs again now, the rest after it, in order.
SELECT count(*) AS requeued_now FROM hatchet.replay_tasks(ARRAY[:'run'::uuid]);
SELECT readable_id, status FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
SELECT pg_temp.work('chain:b') IS NULL AS b_waits_for_a;
SELECT pg_temp.work('chain:a', '{"a": 10}') IS NOT NULL AS a_ran;
SELECT pg_temp.work('chain:b', '{"b": 20}') -> 'parents' AS b_sees_parents;
SELECT pg_temp.work('chain:c', '{"c": 30}') -> 'parents' AS c_sees_parents;
SELECT hatchet.run_status(:'run');
SELECT readable_id, status, retry_count FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
-- If the replayed root fails this time, its descendants are cancelled again.
SELECT count(*) AS requeued_now FROM hatchet.replay_tasks(ARRAY[:'run'::uuid]);
SELECT pg_temp.work('chain:a', fail => true) IS NOT NULL AS a_failed;
SELECT hatchet.run_status(:'run');
SELECT readable_id, status, retry_count FROM hatchet.run_tasks(:'run') ORDER BY readable_id;

-- A run still in progress is left alone.
SELECT hatchet.run_workflow('chain', '{"n": 2}') AS busy \gset
SELECT count(*) AS replayed_busy FROM hatchet.replay_tasks(ARRAY[:'busy'::uuid]);

-- Bad input: NULL (22004), a NULL element (22023), an unknown id (42704) next to a good one: nothing changes.
SELECT pg_temp.err($$SELECT * FROM hatchet.replay_tasks(NULL)$$) AS null_ids;
SELECT pg_temp.err($$SELECT * FROM hatchet.replay_tasks(ARRAY[NULL::uuid])$$) AS null_element;
SELECT set_config('test.solo', :'solo', true) IS NOT NULL AS set, set_config('test.run', :'run', true) IS NOT NULL AS set;
SELECT pg_temp.err($$SELECT * FROM hatchet.replay_tasks(ARRAY[current_setting('test.solo')::uuid,
                                                              '00000000-0000-7000-8000-0000000000ff'])$$) AS unknown_id;
SELECT hatchet.task_status(:'solo') AS solo_untouched, hatchet.run_status(:'run') AS run_untouched;
-- Another tenant cannot replay this tenant's run.
INSERT INTO hatchet.tenants (tenant_id, name) VALUES ('00000000-0000-7000-8000-00000000aaaa', 'other');
SELECT pg_temp.err($$SELECT * FROM hatchet.replay_tasks(ARRAY[current_setting('test.run')::uuid],
                                                        '00000000-0000-7000-8000-00000000aaaa')$$) AS other_tenant;
SELECT hatchet.run_status(:'run') AS run_untouched;
ROLLBACK;
