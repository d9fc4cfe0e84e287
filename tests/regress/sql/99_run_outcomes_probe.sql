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
