-- The dashboard's reads (sql/dashboard.sql): a workflow's versions and task settings, a run's graph (created tasks
-- or not), concurrency keys with running and waiting attempts, queue depth and throughput, run counts per status (each
-- up to a cap), the keyset runs list; all bound to the caller's tenant. Earlier tests' runs share the database, so
-- reads are filtered to this test's workflow and queues.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
SELECT hatchet.register_workflow($${"name": "DashFlow", "tasks": [
    {"readable_id": "fetch", "retries": 2, "backoff_factor": 2,
     "concurrency": {"expression": "input.customer", "max_runs": 1, "limit_strategy": "GROUP_ROUND_ROBIN"},
     "rate_limits": [{"key": "dash-api", "units": 2}]},
    {"readable_id": "store", "parents": ["fetch"], "timeout": "5m"}]}$$) IS NOT NULL AS v1;
SELECT hatchet.register_workflow($${"name": "DashFlow", "tasks": [
    {"readable_id": "fetch", "retries": 3,
     "concurrency": {"expression": "input.customer", "max_runs": 1, "limit_strategy": "GROUP_ROUND_ROBIN"},
     "rate_limits": [{"key": "dash-api", "units": 2}]},
    {"readable_id": "store", "parents": ["fetch"], "timeout": "5m"},
    {"readable_id": "notify", "parents": ["fetch", "store"]}]}$$) IS NOT NULL AS v2;
SELECT id AS wf FROM hatchet.list_workflows('DashFlow') \gset
-- Versions newest first with their task counts; tasks of the latest version with their settings.
SELECT row_number() OVER () AS newest_first, tasks, concurrency FROM hatchet.workflow_versions(:'wf');
SELECT readable_id, action, parents, retries, backoff_factor, execution_timeout, schedule_timeout, concurrency,
       rate_limits
FROM hatchet.workflow_tasks(:'wf');
-- An unknown workflow has neither.
SELECT count(*) AS versions FROM hatchet.workflow_versions('00000000-0000-7000-8000-0000000000d1');
SELECT count(*) AS tasks FROM hatchet.workflow_tasks('00000000-0000-7000-8000-0000000000d1');
SELECT pg_temp.err($$SELECT hatchet.workflow_tasks(NULL)$$) AS null_workflow;

-- Three runs for one customer: one admitted, two waiting at the key.
SELECT hatchet.put_rate_limit('dash-api', 100, 'MINUTE');
SELECT hatchet.run_workflow('DashFlow', '{"customer": "acme"}', '{"team": "blue"}') AS run1 \gset
SELECT hatchet.run_workflow('DashFlow', '{"customer": "acme"}', '{"team": "red"}') AS run2 \gset
SELECT hatchet.run_workflow('DashFlow', '{"customer": "acme"}') AS run3 \gset
-- The graph is the version's: every task with its parents, created or not.
SELECT readable_id, parents, is_on_failure FROM hatchet.run_graph(:'run1');
SELECT pg_temp.err($$SELECT hatchet.run_graph('00000000-0000-7000-8000-0000000000d2')$$) AS unknown_run;
SELECT scope, key, strategy, max_runs, running, waiting FROM hatchet.list_concurrency() WHERE scope LIKE 'dashflow:%';
SELECT queue, ready, delayed, waiting, running, cardinality(completed) AS buckets,
       (SELECT sum(x) FROM unnest(completed) x) AS completed, (SELECT sum(x) FROM unnest(failed) x) AS failed
FROM hatchet.queue_stats() WHERE queue LIKE 'dashflow:%' ORDER BY queue;

-- Run 1's first task completes (in the newest bucket), its second runs; run 2 is admitted.
SELECT hatchet.complete(task_id, retry_count, '{"rows": 1}') IS NOT NULL AS fetched
FROM hatchet.dequeue('dashflow:fetch', 'dash-worker');
SELECT count(*) AS store_claimed FROM hatchet.dequeue('dashflow:store', 'dash-worker');
SELECT queue, ready, waiting, running, completed[12] AS completed_now, (SELECT sum(x) FROM unnest(completed) x) AS completed
FROM hatchet.queue_stats() WHERE queue LIKE 'dashflow:%' ORDER BY queue;
SELECT key, running, waiting FROM hatchet.list_concurrency() WHERE scope LIKE 'dashflow:%';

-- Counts per status in the window, each up to `up_to` (more: there are more than that).
SELECT hatchet.cancel_run(:'run3') AS cancelled;
SELECT status, runs, more FROM hatchet.run_status_counts(workflow_ids => ARRAY[:'wf']::uuid[]);
SELECT status, runs, more FROM hatchet.run_status_counts(workflow_ids => ARRAY[:'wf']::uuid[], up_to => 1);
SELECT status, runs, more FROM hatchet.run_status_counts(workflow_ids => ARRAY[:'wf']::uuid[],
                                                         statuses => ARRAY['CANCELLED', 'QUEUED']);
SELECT status, runs FROM hatchet.run_status_counts(workflow_ids => ARRAY[:'wf']::uuid[], metadata => '{"team": "red"}') WHERE runs > 0;
SELECT status, runs FROM hatchet.run_status_counts(workflow_ids => ARRAY[:'wf']::uuid[], since => now() + interval '1 hour');
SELECT pg_temp.err($$SELECT hatchet.run_status_counts(up_to => 0)$$) AS no_cap;
SELECT pg_temp.err($$SELECT hatchet.run_status_counts(metadata => '[1]')$$) AS bad_metadata;
SELECT pg_temp.err($$SELECT hatchet.run_status_counts(statuses => ARRAY['QUEUED', 'DONE'])$$) AS bad_statuses;
-- The runs list: keyset pages newest first, a status or metadata filter, no inputs.
SELECT string_agg(status, ',' ORDER BY status) AS statuses, count(*) AS runs
FROM hatchet.dashboard_runs(workflow_ids => ARRAY[:'wf']::uuid[]);
SELECT count(*) AS page2 FROM hatchet.dashboard_runs(workflow_ids => ARRAY[:'wf']::uuid[],
    before => (SELECT id FROM hatchet.dashboard_runs(workflow_ids => ARRAY[:'wf']::uuid[], "limit" => 1)));
SELECT count(*) AS page3 FROM hatchet.dashboard_runs(workflow_ids => ARRAY[:'wf']::uuid[],
    before => (SELECT id FROM hatchet.dashboard_runs(workflow_ids => ARRAY[:'wf']::uuid[]) OFFSET 2 LIMIT 1));
SELECT id = :'run3' AS is_run3, status, workflow_name, children FROM hatchet.dashboard_runs(workflow_ids => ARRAY[:'wf']::uuid[], with_status => 'CANCELLED');
SELECT id = :'run2' AS is_run2, additional_metadata FROM hatchet.dashboard_runs(workflow_ids => ARRAY[:'wf']::uuid[], metadata => '{"team": "red"}');
SELECT count(*) AS none_of_other_workflow
FROM hatchet.dashboard_runs(workflow_ids => ARRAY['00000000-0000-7000-8000-0000000000d1']::uuid[]);
SELECT pg_temp.err($$SELECT hatchet.dashboard_runs("limit" => 0)$$) AS no_limit;
SELECT pg_temp.err($$SELECT hatchet.dashboard_runs(with_status => 'DONE')$$) AS bad_status;
ROLLBACK;

BEGIN;
-- Another tenant sees none of it (its own, empty, dashboard); naming a run of the first tenant is "does not exist".
SELECT hatchet.register_workflow($${"name": "DashMine", "tasks": [{"readable_id": "t"}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('DashMine', '{}') AS mine \gset
SELECT id AS mine_wf FROM hatchet.list_workflows('DashMine') \gset
SELECT hatchet.create_tenant('regress_dash_other', '00000000-0000-7000-8000-0000000000d9') IS NOT NULL AS other;
SELECT count(*) AS versions FROM hatchet.workflow_versions(:'mine_wf', '00000000-0000-7000-8000-0000000000d9');
SELECT count(*) AS tasks FROM hatchet.workflow_tasks(:'mine_wf', '00000000-0000-7000-8000-0000000000d9');
SELECT count(*) AS queues FROM hatchet.queue_stats('00000000-0000-7000-8000-0000000000d9');
SELECT sum(runs) AS runs FROM hatchet.run_status_counts(tenant_id => '00000000-0000-7000-8000-0000000000d9');
SELECT count(*) AS runs FROM hatchet.dashboard_runs(tenant_id => '00000000-0000-7000-8000-0000000000d9');
SELECT pg_temp.err(format('SELECT hatchet.run_graph(%L, %L)', :'mine', '00000000-0000-7000-8000-0000000000d9'))
    AS other_tenants_run;
ROLLBACK;

BEGIN;
-- The metadata filter's index is on every partition of hatchet.runs, those maintain_partitions creates later too.
SELECT count(*) AS runs_partitions_before FROM pg_inherits WHERE inhparent = 'hatchet.runs'::regclass \gset
-- (the background worker's pass may hold the parents a moment on a loaded machine: wait for the locks here)
SET LOCAL hatchet.ddl_lock_timeout = 10000;
SELECT count(*) > 0 AS created FROM hatchet.maintain_partitions(days_ahead => 20) WHERE action = 'created';
SELECT count(*) > :runs_partitions_before AS more_partitions,
       count(*) = (SELECT count(*) FROM pg_inherits x WHERE x.inhparent = 'hatchet.runs_metadata_idx'::regclass)
           AS every_partition_indexed,
       bool_and(EXISTS (SELECT 1 FROM pg_index ix JOIN pg_class c ON c.oid = ix.indexrelid
                        JOIN pg_am am ON am.oid = c.relam
                        WHERE ix.indrelid = i.inhrelid AND am.amname = 'gin'
                          AND pg_get_indexdef(ix.indexrelid) LIKE '%additional_metadata jsonb_path_ops%'))
           AS each_is_gin_path_ops
FROM pg_inherits i WHERE i.inhparent = 'hatchet.runs'::regclass;
ROLLBACK;
