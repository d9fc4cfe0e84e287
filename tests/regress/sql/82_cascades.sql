-- Failure, cancellation and skip cascades through a DAG, and the on_failure task.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.work(q text, output jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
    SELECT * INTO t FROM hatchet.dequeue(q, 'sql-worker');
    IF NOT FOUND THEN RETURN NULL; END IF;
    PERFORM hatchet.complete(t.task_id, t.retry_count, output);
    RETURN t.input;
END $$;
CREATE FUNCTION pg_temp.fail(q text, error text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
    SELECT * INTO t FROM hatchet.dequeue(q, 'sql-worker');
    IF NOT FOUND THEN RETURN NULL; END IF;
    RETURN hatchet.fail(t.task_id, t.retry_count, error);
END $$;
CREATE FUNCTION pg_temp.tasks(run uuid) RETURNS TABLE (readable_id text, status text, error text) LANGUAGE sql AS $$
    SELECT readable_id, status, error FROM hatchet.run_tasks(run) ORDER BY readable_id $$;

-- a -> b -> c, a -> d, and e on its own; "handler" runs if anything fails.
SELECT hatchet.register_workflow('{"name": "cascade", "tasks": [
    {"readable_id": "a", "retries": 1}, {"readable_id": "b", "parents": ["a"]}, {"readable_id": "c", "parents": ["b"]},
    {"readable_id": "d", "parents": ["a"]}, {"readable_id": "e"}],
    "on_failure_task": {"readable_id": "handler"}}') IS NOT NULL AS registered;

-- 1. a fails for good: its descendants are cancelled in the same transaction, the handler is queued with the errors.
SELECT hatchet.run_workflow('cascade', '{"try": 1}') AS run \gset
SELECT pg_temp.fail('cascade:a', 'first try') AS first_failure;  -- a retry remains: nothing cascades
SELECT * FROM pg_temp.tasks(:'run');
SELECT pg_temp.fail('cascade:a', 'boom') AS second_failure;
SELECT * FROM pg_temp.tasks(:'run');
-- e is unaffected and still running, so the run is not over yet.
SELECT hatchet.run_status(:'run');
SELECT pg_temp.work('cascade:handler') AS handler_input;
SELECT pg_temp.work('cascade:e') IS NOT NULL AS e_done;
SELECT hatchet.run_status(:'run');
SELECT readable_id, event_type, reason FROM hatchet.run_events(:'run')
WHERE event_type IN ('RETRYING', 'FAILED', 'CANCELLED', 'SKIPPED') ORDER BY readable_id, created_at;

-- 2. Everything completes: the handler is skipped, the run completed.
SELECT hatchet.run_workflow('cascade', '{"try": 2}') AS run \gset
SELECT pg_temp.work(q) IS NOT NULL AS done
FROM unnest(ARRAY['cascade:a', 'cascade:e', 'cascade:b', 'cascade:d', 'cascade:c']) AS q;
SELECT * FROM pg_temp.tasks(:'run');
SELECT hatchet.run_status(:'run');

-- 3. a is cancelled: its descendants are cancelled too; nothing failed, so the handler is skipped.
SELECT hatchet.run_workflow('cascade', '{"try": 3}') AS run \gset
SELECT hatchet.cancel(t.id, reason => 'not needed') FROM hatchet.tasks t WHERE t.run_id = :'run' AND t.readable_id = 'a';
SELECT pg_temp.work('cascade:e') IS NOT NULL AS e_done;
SELECT * FROM pg_temp.tasks(:'run');
SELECT hatchet.run_status(:'run');

-- 4. A task that never gets a worker times out of its queue (schedule timeout): cancelled, and that cascades.
SELECT hatchet.run_workflow('cascade', '{"try": 4}') AS run \gset
SELECT hatchet._expire_queued(hatchet.default_tenant(), clock_timestamp() + interval '1 hour', 100) >= 2 AS expired;
SELECT * FROM pg_temp.tasks(:'run');
SELECT hatchet.run_status(:'run');

-- 5. cancel_run: every unfinished task of a run, running, queued or waiting.
SELECT hatchet.run_workflow('cascade', '{"try": 5}') AS run \gset
SELECT count(*) AS claimed FROM hatchet.dequeue('cascade:a', 'w1');
SELECT hatchet.cancel_run(:'run') AS cancelled;
SELECT * FROM pg_temp.tasks(:'run');
SELECT hatchet.run_status(:'run'), hatchet.cancel_run(:'run') AS cancelled_again;
SELECT count(*) AS matches_left FROM hatchet.matches WHERE run_id = :'run';

-- Skips. "gate" decides: b is skipped when gate's output says so (skip_if on the parent's output, CEL); c has only
-- skipped parents, so it is skipped too; d has a skipped and a completed parent, so it runs, and sees both outputs.
SELECT hatchet.register_workflow($${"name": "skipper", "tasks": [
    {"readable_id": "gate"},
    {"readable_id": "b", "parents": ["gate"],
     "conditions": {"skip_if": [{"kind": "parent", "parent": "gate", "expression": "output.skip == true"}]}},
    {"readable_id": "c", "parents": ["b"]},
    {"readable_id": "x"},
    {"readable_id": "d", "parents": ["b", "x"]}],
    "on_failure_task": {"readable_id": "handler"}}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('skipper') AS run \gset
SELECT pg_temp.work('skipper:gate', '{"skip": true}') IS NOT NULL AS gate_done;
SELECT * FROM pg_temp.tasks(:'run');
SELECT pg_temp.work('skipper:x', '{"x": 1}') IS NOT NULL AS x_done;
SELECT pg_temp.work('skipper:d') AS d_input;
SELECT readable_id, status, output FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
SELECT hatchet.run_status(:'run');
SELECT readable_id, event_type, reason FROM hatchet.run_events(:'run')
WHERE event_type = 'SKIPPED' ORDER BY readable_id;
-- The same workflow when gate says no: b runs.
SELECT hatchet.run_workflow('skipper') AS run \gset
SELECT pg_temp.work('skipper:gate', '{"skip": false}') IS NOT NULL AS gate_done;
SELECT readable_id, status FROM pg_temp.tasks(:'run') WHERE readable_id IN ('b', 'c');
SELECT hatchet.cancel_run(:'run') AS cancelled;

-- A parent-output expression that cannot be evaluated fails the task with the reason (and the failure cascades).
SELECT hatchet.run_workflow('skipper') AS run \gset
SELECT pg_temp.work('skipper:gate', '{"no_skip_field": 1}') IS NOT NULL AS gate_done;
SELECT * FROM pg_temp.tasks(:'run');
SELECT hatchet.cancel_run(:'run') >= 0 AS cleaned;
