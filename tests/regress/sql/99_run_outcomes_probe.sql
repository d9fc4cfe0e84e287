-- The run_outcomes trigger (hatchet._note_run_outcomes) probes each finished task's run and outcome row by key, so a
-- completion batch reads no run it did not finish. Written as plain joins, the planner once hashed every run of the
-- day against the batch: with 1,000 runs in history, a batch of 100 DAG tasks read 100,000 rows, and the SQL DAG
-- drain spent three quarters of its time there. Counted here: rows read by sequential scans of the runs, tasks and
-- run_outcomes partitions while one batch completes (this transaction's own statistics). Rolled back.
\set VERBOSITY terse
BEGIN;
SELECT hatchet.register_workflow('{"name": "probe_chain", "tasks": [
    {"readable_id": "a"}, {"readable_id": "b", "parents": ["a"]}]}') IS NOT NULL AS chain;
SELECT count(hatchet.run_workflow('probe_chain', jsonb_build_object('i', g))) AS runs FROM generate_series(1, 1000) g;
CREATE TEMP TABLE probe_claimed AS SELECT task_id, retry_count FROM hatchet.dequeue('probe_chain:a', 'probe', 100);
SELECT count(*) AS claimed FROM probe_claimed;
CREATE FUNCTION pg_temp.seq_rows() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(s.seq_tup_read), 0)::bigint FROM pg_stat_xact_user_tables s
    WHERE s.schemaname = 'hatchet'
      AND (s.relname LIKE 'runs\_p%' OR s.relname LIKE 'tasks\_p%' OR s.relname LIKE 'run\_outcomes\_p%')
$$;
CREATE TEMP TABLE probe_before AS SELECT pg_temp.seq_rows() AS n;
SELECT hatchet.complete_many(array_agg(task_id), array_agg(retry_count)) AS completed FROM probe_claimed;
SELECT pg_temp.seq_rows() - (SELECT n FROM probe_before) AS rows_read_by_sequential_scans;
-- The batch's runs got their COMPLETED candidates (one each), and the b tasks were queued.
SELECT count(*) AS outcome_rows, count(DISTINCT o.run_id) AS runs
FROM hatchet.run_outcomes o JOIN hatchet.tasks t ON t.tenant_id = o.tenant_id AND t.run_id = o.run_id
WHERE t.id IN (SELECT task_id FROM probe_claimed);
SELECT count(*) AS b_queued FROM hatchet.ready_queue WHERE queue = 'probe_chain:b';
ROLLBACK;

-- A statement whose final events all belong to tenants without any runs row (plain SQL queues) returns before the
-- per-event probe: no task is read for them. A statement mixing such a tenant with one that has runs still notes the
-- latter's outcome. Events inserted directly, so that nothing else reads tasks in between. Rolled back.
BEGIN;
SELECT hatchet.create_tenant('regress_outcomes_plain', '00000000-0000-7000-8000-0000000000e1') IS NOT NULL AS plain_tenant;
SELECT hatchet.enqueue('outcomes_plain', tenant_id => '00000000-0000-7000-8000-0000000000e1') AS plain_task \gset
SELECT hatchet.register_workflow('{"name": "probe_single", "tasks": [{"readable_id": "s"}]}') IS NOT NULL AS single;
SELECT hatchet.run_workflow('probe_single', '{}') AS single_run \gset
SELECT t.id AS single_task FROM hatchet.tasks t WHERE t.run_id = :'single_run' \gset
CREATE FUNCTION pg_temp.task_probes() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(s.idx_scan), 0)::bigint FROM pg_stat_xact_user_tables s
    WHERE s.schemaname = 'hatchet' AND s.relname LIKE 'tasks\_p%'
$$;
CREATE TEMP TABLE probe_before AS SELECT pg_temp.task_probes() AS n;
INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type)
VALUES ('00000000-0000-7000-8000-0000000000e1', hatchet.uuid_time(:'plain_task'), :'plain_task', 0, 'COMPLETED');
SELECT pg_temp.task_probes() - (SELECT n FROM probe_before) AS tasks_probed_for_a_plain_tenant;
SELECT count(*) AS plain_outcome_rows FROM hatchet.run_outcomes
WHERE tenant_id = '00000000-0000-7000-8000-0000000000e1';
INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type)
VALUES ('00000000-0000-7000-8000-0000000000e1', hatchet.uuid_time(:'plain_task'), :'plain_task', 0, 'FAILED'),
       (hatchet._tenant(NULL), hatchet.uuid_time(:'single_task'), :'single_task', 0, 'FAILED');
SELECT o.outcome, o.run_id = :'single_run' AS the_workflow_run FROM hatchet.run_outcomes o
WHERE o.run_id IN (:'single_run', :'plain_task') ORDER BY 1;
ROLLBACK;
