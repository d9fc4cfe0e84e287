-- The background worker, observed from outside its transactions: it is running, and it promotes due tasks and times
-- out attempts on its own. Each wait polls (up to 20 s) for an outcome, so the output never depends on timing.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.wait_for(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE ok boolean;
BEGIN
    FOR i IN 1..200 LOOP
        EXECUTE q INTO ok;
        IF ok THEN RETURN true; END IF;
        PERFORM pg_sleep(0.1);
        PERFORM pg_stat_clear_snapshot();  -- pg_stat_activity is otherwise frozen for the transaction
    END LOOP;
    RETURN false;
END $$;

-- The worker serves this database (hatchet.database_name); it may still be starting right after CREATE EXTENSION.
SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_hatchet'
                                         AND application_name = 'pg_hatchet worker' AND datname = current_database())$$)
    AS worker_running;

-- A task scheduled 300 ms ahead becomes ready without anyone calling dequeue or run_maintenance.
SELECT hatchet.enqueue('bgw', '{"kind": "scheduled"}', run_at => clock_timestamp() + interval '300 milliseconds') AS d \gset
SELECT hatchet.task_status(:'d');
SELECT pg_temp.wait_for(format('SELECT EXISTS (SELECT 1 FROM hatchet.ready_queue WHERE task_id = %L)', :'d'))
    AS promoted_by_worker;

-- An attempt past its timeout is retried by the worker exactly once.
SELECT hatchet.enqueue('bgw_timeout', retries => 2, execution_timeout => '200ms') AS t \gset
SELECT count(*) FROM hatchet.dequeue('bgw_timeout', 'gone-worker');
SELECT pg_temp.wait_for(format('SELECT EXISTS (SELECT 1 FROM hatchet.ready_queue WHERE task_id = %L)', :'t'))
    AS retried_by_worker;
SELECT event_type, retry_count FROM hatchet.task_events(:'t') ORDER BY created_at;

-- Clean up what this file queued.
SELECT hatchet.cancel(:'d'), hatchet.cancel(:'t');
