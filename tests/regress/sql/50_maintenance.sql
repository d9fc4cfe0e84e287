-- The maintenance pass (what the background worker runs): due delayed attempts, execution timeouts, schedule
-- timeouts. Run inside transactions so the worker cannot see (or race) these rows.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
-- An attempt past its execution timeout is failed with a reason and retried while retries remain.
SELECT hatchet.enqueue('maint', '{}', retries => 1, execution_timeout => '1s') AS t \gset
SELECT count(*) FROM hatchet.dequeue('maint', 'slow-worker');
UPDATE hatchet.running SET timeout_at = assigned_at WHERE task_id = :'t';  -- due at once
SELECT hatchet.run_maintenance() IS NOT NULL AS something_pending;
SELECT retry_count, priority FROM hatchet.ready_queue WHERE task_id = :'t';
SELECT event_type, retry_count, reason FROM hatchet.task_events(:'t');
-- Second timeout, no retries left: FAILED.
SELECT retry_count FROM hatchet.dequeue('maint', 'slow-worker');
UPDATE hatchet.running SET timeout_at = assigned_at WHERE task_id = :'t';  -- due at once
SELECT hatchet.run_maintenance() IS NULL AS nothing_pending;
SELECT hatchet.task_status(:'t');
SELECT event_type, retry_count FROM hatchet.task_events(:'t') WHERE event_type IN ('TIMED_OUT', 'FAILED');
-- The timed-out attempt can no longer report.
SELECT pg_temp.err(format('SELECT hatchet.complete(%L, 1)', :'t')) AS complete_after_timeout;
ROLLBACK;

BEGIN;
-- A queued attempt nobody claimed within its schedule timeout is cancelled.
SELECT hatchet.enqueue('maint', schedule_timeout => '1s') AS s \gset
UPDATE hatchet.ready_queue SET schedule_timeout_at = now() - interval '1 second' WHERE task_id = :'s';
SELECT hatchet.run_maintenance() IS NULL AS nothing_pending;
SELECT hatchet.task_status(:'s');
SELECT event_type, reason FROM hatchet.task_events(:'s') WHERE event_type = 'CANCELLED';
ROLLBACK;

BEGIN;
-- Delayed attempts whose time has come move to the ready queue (keeping a retry's priority 4).
SELECT hatchet.enqueue('maint', run_at => now() + interval '1 hour') AS d \gset
SELECT hatchet.run_maintenance() = now() + interval '1 hour' AS next_due_is_run_at;
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE task_id = :'d';
SELECT hatchet.run_maintenance() > now() + interval '4 minutes' AS next_due_is_schedule_timeout;
SELECT count(*) AS promoted FROM hatchet.ready_queue WHERE task_id = :'d';
SELECT count(*) AS still_delayed FROM hatchet.delayed_queue WHERE task_id = :'d';
ROLLBACK;
