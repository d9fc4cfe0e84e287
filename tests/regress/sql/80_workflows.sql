-- Workflow registration: Hatchet's CreateWorkflowVersionRequest as JSON, validated, versioned by checksum.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

-- The shape the Python SDK sends for DAGWorkflow (actions are lower-cased "<workflow>:<task>").
SELECT hatchet.register_workflow($${
  "name": "DAGWorkflow", "version": "", "description": "a diamond",
  "event_triggers": [], "cron_triggers": [], "default_priority": 1,
  "tasks": [
    {"readable_id": "step1", "action": "dagworkflow:step1", "timeout": "5s", "inputs": "{}", "parents": [],
     "retries": 0, "rate_limits": [], "worker_labels": {}, "is_durable": false, "slot_requests": {"default": 1}},
    {"readable_id": "step2", "action": "dagworkflow:step2", "timeout": "5s", "parents": []},
    {"readable_id": "step3", "action": "dagworkflow:step3", "parents": ["step1", "step2"], "retries": 2,
     "backoff_factor": 2.0, "backoff_max_seconds": 60, "schedule_timeout": "10m"},
    {"readable_id": "step4", "action": "dagworkflow:step4", "parents": ["step1", "step3"], "is_durable": true}
  ]}$$) AS v1 \gset
SELECT w.name, count(v.*) AS versions FROM hatchet.workflows w JOIN hatchet.workflow_versions v ON v.workflow_id = w.id
WHERE w.name = 'DAGWorkflow' GROUP BY w.name;
SELECT d.readable_id, d.action, d.parents, d.is_on_failure, d.is_durable, d.retries, d.backoff_factor,
       d.backoff_max_seconds, d.execution_timeout, d.schedule_timeout, d.slot_type, d.slot_units
FROM hatchet.task_definitions d JOIN hatchet.workflow_versions v ON v.id = d.workflow_version_id
WHERE v.external_id = :'v1' ORDER BY d.id;

-- The same definition again is a no-op (same version id); a changed one is a new version, used by new runs.
SELECT hatchet.register_workflow($${"name": "DAGWorkflow", "version": "", "description": "a diamond",
  "event_triggers": [], "cron_triggers": [], "default_priority": 1, "tasks": [
    {"readable_id": "step1", "action": "dagworkflow:step1", "timeout": "5s", "inputs": "{}", "parents": [],
     "retries": 0, "rate_limits": [], "worker_labels": {}, "is_durable": false, "slot_requests": {"default": 1}},
    {"readable_id": "step2", "action": "dagworkflow:step2", "timeout": "5s", "parents": []},
    {"readable_id": "step3", "action": "dagworkflow:step3", "parents": ["step1", "step2"], "retries": 2,
     "backoff_factor": 2.0, "backoff_max_seconds": 60, "schedule_timeout": "10m"},
    {"readable_id": "step4", "action": "dagworkflow:step4", "parents": ["step1", "step3"], "is_durable": true}
  ]}$$) = :'v1' AS same_version;
SELECT hatchet.register_workflow('{"name": "DAGWorkflow", "tasks": [{"readable_id": "only"}]}') AS v2 \gset
SELECT :'v2' <> :'v1' AS new_version,
       (SELECT count(*) FROM hatchet.workflow_versions v JOIN hatchet.workflows w ON w.id = v.workflow_id
        WHERE w.name = 'DAGWorkflow') AS versions;
-- Going back to the first definition makes it the latest again (a third version, not the first one revived).
SELECT hatchet.register_workflow(definition) NOT IN (:'v1', :'v2') AS back_to_v1
FROM hatchet.workflow_versions WHERE external_id = :'v1';
SELECT (SELECT count(*) FROM hatchet.workflow_versions v JOIN hatchet.workflows w ON w.id = v.workflow_id
        WHERE w.name = 'DAGWorkflow') AS versions;

-- Defaults: action "<workflow>:<task>" lower-cased, timeout 60s, schedule timeout 5m, one default slot.
SELECT hatchet.register_workflow('{"name": "Defaults", "tasks": [{"readable_id": "Only"}]}') AS v \gset
SELECT d.readable_id, d.action, d.execution_timeout, d.schedule_timeout, d.retries, d.slot_type, d.slot_units, d.conditions
FROM hatchet.task_definitions d JOIN hatchet.workflow_versions v ON v.id = d.workflow_version_id
WHERE v.external_id = :'v';

-- Proto enums arrive as numbers or names and are stored by name; conditions in the proto's shape are stored as
-- {wait_for, skip_if, cancel_if}; concurrency, rate limits and labels are normalised for the flow-control code.
SELECT hatchet.register_workflow($${
  "name": "Normalised", "sticky": 1, "default_priority": 2,
  "concurrency": {"expression": "input.user", "max_runs": 2, "limit_strategy": 3},
  "tasks": [
    {"readable_id": "a", "rate_limits": [{"key": "api", "units": 2}, {"key_expr": "input.k", "units_expr": "1",
                                           "limit_values_expr": "10", "duration": 1}],
     "worker_labels": {"gpu": {"str_value": "a100", "required": true, "comparator": 0}},
     "concurrency": [{"expression": "input.tenant", "limit_strategy": "CANCEL_NEWEST"}]},
    {"readable_id": "b", "parents": ["a"], "conditions": {
       "parent_override_conditions": [{"base": {"action": 3, "or_group_id": "g1", "expression": "output.n > 1"},
                                       "parent_readable_id": "a"}],
       "sleep_conditions": [{"base": {"action": 1, "or_group_id": "g2", "readable_data_key": "nap"},
                             "sleep_for": "10s"}],
       "user_event_conditions": [{"base": {"action": 0, "or_group_id": "g2", "expression": "input.ok"},
                                  "user_event_key": "b:go", "event_scope": "s1"},
                                 {"base": {"action": 2, "or_group_id": "g3"}, "user_event_key": "b:stop"}]}}
  ]}$$) AS v \gset
SELECT sticky, default_priority, concurrency FROM hatchet.workflow_versions WHERE external_id = :'v';
\x on
SELECT d.readable_id, d.concurrency, d.rate_limits, d.worker_labels, d.conditions
FROM hatchet.task_definitions d JOIN hatchet.workflow_versions v ON v.id = d.workflow_version_id
WHERE v.external_id = :'v' ORDER BY d.id;
\x off

-- The on_failure task is stored as a task flagged is_on_failure (readable id "on_failure" unless named).
SELECT hatchet.register_workflow('{"name": "WithFailureHandler", "tasks": [{"readable_id": "work"}],
                                   "on_failure_task": {"action": "withfailurehandler:cleanup"}}') AS v \gset
SELECT readable_id, action, is_on_failure FROM hatchet.task_definitions d
JOIN hatchet.workflow_versions v ON v.id = d.workflow_version_id WHERE v.external_id = :'v' ORDER BY d.id;

-- Declared crons and default filters: replaced (kept when unchanged) on every registration.
SELECT hatchet.register_workflow('{"name": "Declared", "tasks": [{"readable_id": "t"}],
    "cron_triggers": ["0 3 * * *", "*/5 * * * *"], "cron_input": "{\"from\": \"cron\"}",
    "event_triggers": ["user:*"],
    "default_filters": [{"expression": "input.plan == ''pro''", "scope": "acme", "payload": {"tier": 1}}]}') IS NOT NULL;
SELECT name, expression, input, method, next_tick_at > now() AS in_future FROM hatchet.list_crons('Declared');
SELECT scope, expression, payload, is_declarative FROM hatchet.list_filters('Declared');
SELECT id AS kept_cron FROM hatchet.crons WHERE name = '0 3 * * *' \gset
SELECT hatchet.register_workflow('{"name": "Declared", "tasks": [{"readable_id": "t"}],
    "cron_triggers": ["0 3 * * *"], "event_triggers": ["user:*"], "default_filters": []}') IS NOT NULL;
SELECT l.name, l.input, l.cron_id = :'kept_cron' AS same_row FROM hatchet.list_crons('Declared') l;
SELECT count(*) AS filters_left FROM hatchet.list_filters('Declared');
SELECT event_triggers, cron_triggers FROM hatchet.workflow_versions v JOIN hatchet.workflows w ON w.id = v.workflow_id
WHERE w.name = 'Declared' ORDER BY v.id DESC LIMIT 1;

-- (No declared crons left behind to fire during later tests.)
SELECT hatchet.register_workflow('{"name": "Declared", "tasks": [{"readable_id": "t"}]}') IS NOT NULL AS no_crons;
SELECT count(*) AS crons_left FROM hatchet.list_crons('Declared');

-- Bad definitions are rejected with a clear error and change nothing.
CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM hatchet.workflows) AS wfs,
    (SELECT count(*) FROM hatchet.workflow_versions) AS versions, (SELECT count(*) FROM hatchet.task_definitions) AS defs;
SELECT pg_temp.err($$SELECT hatchet.register_workflow(NULL)$$) AS null_definition;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('[]')$$) AS not_an_object;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"tasks": [{"readable_id": "a"}]}')$$) AS no_name;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": []}')$$) AS no_tasks;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"action": "x"}]}')$$) AS no_readable_id;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a"},
    {"readable_id": "a"}]}')$$) AS duplicate_task;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a"}],
    "on_failure_task": {"readable_id": "a"}}')$$) AS on_failure_named_like_a_task;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "etl", "tasks": [{"readable_id": "extract"},
    {"readable_id": "transform", "parents": ["load"]}]}')$$) AS unknown_parent;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a", "parents": ["c"]},
    {"readable_id": "b", "parents": ["a"]}, {"readable_id": "c", "parents": ["b"]}, {"readable_id": "d", "parents": ["c"]}]}')$$)
    AS cycle;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a", "parents": ["a"]}]}')$$)
    AS self_parent;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a"},
    {"readable_id": "b", "parents": ["a", "a"]}]}')$$) AS parent_twice;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a", "timeout": "5 minutes"}]}')$$)
    AS bad_timeout;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a", "schedule_timeout": "10"}]}')$$)
    AS bad_schedule_timeout;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a", "retries": -1}]}')$$)
    AS negative_retries;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a", "retries": "x"}]}')$$)
    AS retries_not_a_number;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a"}],
    "cron_triggers": ["* * *"]}')$$) AS bad_cron;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a"}],
    "cron_triggers": ["61 * * * *"]}')$$) AS cron_out_of_range;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a"}],
    "default_priority": 4}')$$) AS bad_priority;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a"}],
    "sticky": "STICKIEST"}')$$) AS bad_sticky;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a",
    "concurrency": {"expression": "input.k", "limit_strategy": "DROP_NEWEST"}}]}')$$) AS unsupported_strategy;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a"},
    {"readable_id": "b", "conditions": {"wait_for": [{"kind": "parent", "parent": "a"}]}}]}')$$) AS condition_not_on_a_parent;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a",
    "conditions": {"sleep_conditions": [{"base": {"action": 1}, "sleep_for": "forever"}]}}]}')$$) AS bad_sleep;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a",
    "conditions": {"user_event_conditions": [{"base": {"action": 1}}]}}]}')$$) AS event_without_key;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a",
    "conditions": {"user_event_conditions": [{"base": {"action": 1, "expression": "input.ok =="}, "user_event_key": "k"}]}}]}')$$)
    AS bad_cel;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a",
    "conditions": {"user_event_conditions": [{"base": {"action": 7}, "user_event_key": "k"}]}}]}')$$) AS bad_action;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a"}],
    "on_failure_task": {"readable_id": "h", "parents": ["a"]}}')$$) AS on_failure_with_parents;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "bad", "tasks": [{"readable_id": "a"}],
    "default_filters": [{"expression": "true"}]}')$$) AS filter_without_scope;
SELECT (SELECT count(*) FROM hatchet.workflows) = b.wfs AS no_workflows,
       (SELECT count(*) FROM hatchet.workflow_versions) = b.versions AS no_versions,
       (SELECT count(*) FROM hatchet.task_definitions) = b.defs AS no_definitions
FROM before b;

-- Running a workflow that does not exist.
SELECT pg_temp.err($$SELECT hatchet.run_workflow('nope')$$) AS unknown_workflow;
SELECT pg_temp.err($$SELECT hatchet.run_workflow('Defaults', '[1]')$$) AS array_input;
SELECT pg_temp.err($$SELECT hatchet.run_workflow('Defaults', priority => 5)$$) AS bad_run_priority;
SELECT pg_temp.err($$SELECT hatchet.run_status('00000000-0000-7000-8000-000000000000')$$) AS unknown_run;
SELECT pg_temp.err($$SELECT hatchet.run_status(NULL)$$) AS null_run;
