-- Workflow-level idempotency keys (issue 20, Hatchet's idempotency example): a workflow with an idempotency config
-- claims the key its CEL expression gives for each run; while another run holds the key, a trigger is refused with
-- SQLSTATE 23505 and the holder's id as the detail. TTL keys are held until they expire; STATUS keys are also given
-- back when their run finishes (after its last retry). Keys are one space per tenant, shared by all workflows. An
-- event whose run is refused creates no run and the push still succeeds.
\set VERBOSITY terse
-- A trigger's outcome without its generated id: 'started', or the SQLSTATE and detail of the error.
CREATE FUNCTION pg_temp.try_run(p_name text, p_input jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state  text;
    v_detail text;
BEGIN
    PERFORM hatchet.run_workflow(p_name, p_input);
    RETURN 'started';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_state || ' ' || v_detail;
END
$$;
CREATE FUNCTION pg_temp.runs_of(p_name text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM hatchet.runs r JOIN hatchet.workflow_versions v ON v.tenant_id = r.tenant_id
                                                                       AND v.id = r.workflow_version_id
    JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id WHERE w.name = p_name
$$;

-- Bad configs are refused when the workflow is registered.
SELECT hatchet.register_workflow($${"name": "IdemBad", "idempotency": {"ttl_ms": 1000},
    "tasks": [{"readable_id": "t"}]}$$);
SELECT hatchet.register_workflow($${"name": "IdemBad", "idempotency": {"expression": "input.id", "ttl_ms": 0},
    "tasks": [{"readable_id": "t"}]}$$);
SELECT hatchet.register_workflow($${"name": "IdemBad", "idempotency": {"expression": "input.id"},
    "tasks": [{"readable_id": "t"}]}$$);
SELECT hatchet.register_workflow($${"name": "IdemBad",
    "idempotency": {"expression": "input.id", "ttl_ms": 1000, "method": "SOMETIMES"},
    "tasks": [{"readable_id": "t"}]}$$);
SELECT hatchet.register_workflow($${"name": "IdemBad", "idempotency": {"expression": "input.(", "ttl_ms": 1000},
    "tasks": [{"readable_id": "t"}]}$$);
-- The normalised config is kept in the definition (method TTL by default; the proto's enum number works too).
BEGIN;
SELECT hatchet.register_workflow($${"name": "IdemNorm", "idempotency": {"expression": "input.id", "ttl_ms": 1000},
    "tasks": [{"readable_id": "t"}]}$$) IS NOT NULL AS registered;
SELECT hatchet.register_workflow($${"name": "IdemNorm2", "idempotency": {"expression": "input.id", "ttl_ms": 5,
    "method": 1}, "tasks": [{"readable_id": "t"}]}$$) IS NOT NULL AS registered;
SELECT w.name, v.definition->'idempotency' AS idempotency FROM hatchet.workflow_versions v
JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
WHERE w.name LIKE 'IdemNorm%' ORDER BY w.name;
ROLLBACK;

BEGIN;
-- TTL: the first run with a key holds it; a second trigger with it is refused and names the holder.
SELECT hatchet.register_workflow($${"name": "IdemTtl",
    "idempotency": {"expression": "input.id", "ttl_ms": 400, "method": "TTL"},
    "tasks": [{"readable_id": "t"}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('IdemTtl', '{"id": "a"}') AS run1 \gset
SELECT pg_temp.try_run('IdemTtl', '{"id": "a"}') = '23505 ' || :'run1' AS refused_naming_run1;
SELECT pg_temp.try_run('IdemTtl', '{"id": "b"}') AS other_key;
-- The key space is the tenant's: another workflow with the same key is refused too.
SELECT hatchet.register_workflow($${"name": "IdemOther",
    "idempotency": {"expression": "input.id", "ttl_ms": 60000, "method": "TTL"},
    "tasks": [{"readable_id": "t"}]}$$) IS NOT NULL AS registered;
SELECT pg_temp.try_run('IdemOther', '{"id": "a"}') = '23505 ' || :'run1' AS refused_across_workflows;
-- A key expression that fails on this input refuses the trigger (22023), and creates nothing.
SELECT pg_temp.try_run('IdemTtl', '{"name": "no id"}') AS no_key;
SELECT pg_temp.try_run('IdemTtl', '{"id": 7}') AS not_a_string;
SELECT pg_temp.runs_of('IdemTtl') AS idemttl_runs, pg_temp.runs_of('IdemOther') AS idemother_runs;
-- A TTL key stays held when its run finishes, until it expires; then the next trigger takes it over.
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done FROM hatchet.dequeue('idemttl:t', n => 10);
SELECT pg_temp.try_run('IdemTtl', '{"id": "a"}') = '23505 ' || :'run1' AS still_held_after_finishing;
SELECT pg_sleep(0.5);
SELECT pg_temp.try_run('IdemTtl', '{"id": "a"}') AS after_expiry;
SELECT k.run_id <> :'run1' AS taken_over, k.until_done FROM hatchet.run_idempotency_keys k WHERE k.key = 'a';
SELECT pg_temp.runs_of('IdemTtl') AS idemttl_runs;
-- Each claim removes a few expired keys of others ("b" expired too).
SELECT pg_temp.try_run('IdemTtl', '{"id": "c"}') AS third_key;
SELECT key FROM hatchet.run_idempotency_keys ORDER BY key;
ROLLBACK;

BEGIN;
-- STATUS: the key is held while the run is queued, running or waiting for a retry, and given back when it ends.
SELECT hatchet.register_workflow($${"name": "IdemStatus",
    "idempotency": {"expression": "input.id", "ttl_ms": 60000, "method": "STATUS"},
    "tasks": [{"readable_id": "t", "retries": 1}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('IdemStatus', '{"id": "s"}') AS run1 \gset
SELECT pg_temp.try_run('IdemStatus', '{"id": "s"}') = '23505 ' || :'run1' AS refused_while_queued;
SELECT hatchet.fail(task_id, retry_count, 'boom') AS first_failure FROM hatchet.dequeue('idemstatus:t');
SELECT pg_temp.try_run('IdemStatus', '{"id": "s"}') = '23505 ' || :'run1' AS refused_while_retrying;
SELECT hatchet.fail(task_id, retry_count, 'boom') AS last_failure FROM hatchet.dequeue('idemstatus:t');
SELECT hatchet.run_status(:'run1') AS run1;
SELECT count(*) AS keys_left FROM hatchet.run_idempotency_keys WHERE key = 's';
-- Completed: given back.
SELECT hatchet.run_workflow('IdemStatus', '{"id": "s"}') AS run2 \gset
SELECT pg_temp.try_run('IdemStatus', '{"id": "s"}') = '23505 ' || :'run2' AS refused_while_queued;
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done FROM hatchet.dequeue('idemstatus:t');
SELECT count(*) AS keys_left FROM hatchet.run_idempotency_keys WHERE key = 's';
-- Cancelled (queued, or running): given back.
SELECT hatchet.run_workflow('IdemStatus', '{"id": "s"}') AS run3 \gset
SELECT hatchet.cancel_run(:'run3') AS cancelled;
SELECT count(*) AS keys_left FROM hatchet.run_idempotency_keys WHERE key = 's';
SELECT hatchet.run_workflow('IdemStatus', '{"id": "s"}') AS run4 \gset
SELECT count(*) AS claimed FROM hatchet.dequeue('idemstatus:t');
SELECT hatchet.cancel_run(:'run4') AS cancelled;
SELECT count(*) AS keys_left FROM hatchet.run_idempotency_keys WHERE key = 's';
-- A DAG gives its key back only when its last task is done.
SELECT hatchet.register_workflow($${"name": "IdemDag",
    "idempotency": {"expression": "input.id", "ttl_ms": 60000, "method": "STATUS"},
    "tasks": [{"readable_id": "a"}, {"readable_id": "b", "parents": ["a"]}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('IdemDag', '{"id": "d"}') AS dag \gset
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done FROM hatchet.dequeue('idemdag:a');
SELECT pg_temp.try_run('IdemDag', '{"id": "d"}') = '23505 ' || :'dag' AS refused_while_b_waits;
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done FROM hatchet.dequeue('idemdag:b');
SELECT hatchet.run_status(:'dag') AS dag, pg_temp.try_run('IdemDag', '{"id": "d"}') AS after_dag;
ROLLBACK;

BEGIN;
-- Events: a run the key refuses is simply not created; the push succeeds. Two workflows on one key with the same
-- key expression make one run for two events, as in Hatchet's event-trigger test.
SELECT hatchet.register_workflow($${"name": "IdemEventA", "event_triggers": ["idem:event"],
    "idempotency": {"expression": "input.id", "ttl_ms": 60000, "method": "TTL"},
    "tasks": [{"readable_id": "t"}]}$$) IS NOT NULL AS registered;
SELECT hatchet.register_workflow($${"name": "IdemEventB", "event_triggers": ["idem:event"],
    "idempotency": {"expression": "input.id", "ttl_ms": 2000, "method": "TTL"},
    "tasks": [{"readable_id": "t"}]}$$) IS NOT NULL AS registered;
SELECT hatchet.push_event('idem:event', '{"id": "e"}') IS NOT NULL AS pushed;
SELECT hatchet.push_event('idem:event', '{"id": "e"}') IS NOT NULL AS pushed;
SELECT pg_temp.runs_of('IdemEventA') + pg_temp.runs_of('IdemEventB') AS runs;
-- A payload the key expression fails on: a warning, no run, and the push succeeds.
SELECT hatchet.push_event('idem:event', '{"other": 1}') IS NOT NULL AS pushed;
SELECT pg_temp.runs_of('IdemEventA') + pg_temp.runs_of('IdemEventB') AS runs;
ROLLBACK;
