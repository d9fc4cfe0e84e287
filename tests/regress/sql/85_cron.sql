-- Crons and one-off schedules: expressions (5 fields, or 6 with seconds; UTC), creation and validation, and what one
-- pass of the worker does with due ones. Passes are called by hand inside a transaction that holds the rows, so the
-- background worker cannot fire them first; 86_worker_time.sql watches the worker fire them in real time.
\set VERBOSITY terse
SET TIME ZONE 'UTC';
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

-- Next ticks, in UTC. Days of the week are standard cron's (0 or 7 = Sunday, 1-5 = Monday to Friday).
SELECT hatchet.cron_next('*/15 * * * *', '2025-01-01 00:00:00+00') AS every_15_minutes,
       hatchet.cron_next('*/15 * * * *', '2025-01-01 00:07:00+00') AS from_00_07,
       hatchet.cron_next('0 3 * * *', '2025-01-01 03:00:00+00') AS daily_at_3_strictly_after;
SELECT to_char(t, 'Dy YYYY-MM-DD HH24:MI:SS') AS weekdays_at_9 FROM hatchet.cron_ticks('0 9 * * 1-5', '2025-01-03 10:00:00+00', 3) t;
SELECT to_char(t, 'Dy HH24:MI') AS sundays FROM hatchet.cron_ticks('30 8 * * 0,7', '2025-01-01 00:00:00+00', 2) t;
SELECT to_char(t, 'HH24:MI:SS') AS every_10_seconds FROM hatchet.cron_ticks('*/10 * * * * *', '2025-01-01 00:00:00+00', 3) t;
SELECT to_char(t, 'HH24:MI:SS') AS every_second FROM hatchet.cron_ticks('* * * * * *', '2025-01-01 00:00:00.5+00', 3) t;
SELECT hatchet.cron_next('@hourly', '2025-01-01 00:30:00+00') AS hourly, hatchet.cron_next('0 0 30 2 *', now()) AS never;
SELECT pg_temp.err(format('SELECT hatchet.check_cron(%L)', e)) AS check_cron, e AS expression
FROM unnest(ARRAY['* * * * *', '* * * *', '* * * * * * * *', '60 * * * *', '* 24 * * *', '* * 0 * *', '* * * 13 *',
                  '* * * * 8', '* * * * 5-2', 'every minute', '*/0 * * * *', '']) AS e;

SELECT hatchet.register_workflow('{"name": "nightly", "tasks": [{"readable_id": "t"}]}') IS NOT NULL AS registered;
SELECT hatchet.create_cron('nightly', 'backup', '0 2 * * *', '{"full": true}', '{"owner": "ops"}', priority => 3) AS c \gset
SELECT hatchet.create_cron('nightly', 'every-second', '* * * * * *') AS c2 \gset
SELECT hatchet.delete_cron(:'c2') AS deleted, hatchet.delete_cron(:'c2') AS deleted_again;
SELECT workflow, name, expression, input, additional_metadata, priority, method, enabled,
       next_tick_at = hatchet.cron_next('0 2 * * *', now()) AS next_tick_is_2am, last_tick_at
FROM hatchet.list_crons('nightly');

-- Bad crons are rejected when they are created.
SELECT pg_temp.err($$SELECT hatchet.create_cron('nightly', 'bad', '* * *')$$) AS bad_expression;
SELECT pg_temp.err($$SELECT hatchet.create_cron('nightly', 'bad', '0 0 30 2 *')$$) AS never_fires;
SELECT pg_temp.err($$SELECT hatchet.create_cron('nightly', 'backup', '0 4 * * *')$$) AS duplicate_name;
SELECT pg_temp.err($$SELECT hatchet.create_cron('nope', 'x', '* * * * *')$$) AS unknown_workflow;
SELECT pg_temp.err($$SELECT hatchet.create_cron('nightly', '', '* * * * *')$$) AS empty_name;
SELECT pg_temp.err($$SELECT hatchet.create_cron('nightly', NULL, '* * * * *')$$) AS null_name;
SELECT pg_temp.err($$SELECT hatchet.create_cron('nightly', 'x', '* * * * *', '[]')$$) AS array_input;
SELECT pg_temp.err($$SELECT hatchet.create_cron('nightly', 'x', '* * * * *', priority => 9)$$) AS bad_priority;
SELECT count(*) AS crons FROM hatchet.list_crons('nightly');

-- A due tick fires exactly once: the run gets the cron's input, priority and metadata plus Hatchet's reserved keys.
-- After downtime (the tick was due long ago) it fires one catch-up run, then continues from the next tick after now.
BEGIN;
UPDATE hatchet.crons SET next_tick_at = '2020-01-01 02:00:00+00' WHERE id = :'c';
SELECT hatchet._run_time_triggers() AS next_due \gset
SELECT hatchet._run_time_triggers() AS next_due \gset
SELECT r.input, r.priority, r.triggered_by, jsonb_pretty(r.additional_metadata) AS metadata
FROM hatchet.runs r JOIN hatchet.workflow_versions v ON v.id = r.workflow_version_id
JOIN hatchet.workflows w ON w.id = v.workflow_id WHERE w.name = 'nightly';
SELECT last_tick_at, next_tick_at = hatchet.cron_next('0 2 * * *', now()) AS continues_from_now FROM hatchet.crons WHERE id = :'c';
SELECT input FROM hatchet.dequeue('nightly:t');
COMMIT;

-- A disabled cron does not fire.
BEGIN;
UPDATE hatchet.crons SET next_tick_at = '2020-01-01 02:00:00+00', enabled = false WHERE id = :'c';
SELECT hatchet._run_time_triggers() AS next_due \gset
SELECT count(*) AS runs FROM hatchet.runs WHERE additional_metadata->>'hatchet__cron_name' = 'backup';
ROLLBACK;
SELECT hatchet.delete_cron(:'c') AS deleted;

-- One-off schedules: a row, listed until it fires; fired ones keep the run id.
SELECT hatchet.schedule('nightly', now() + interval '1 year', '{"when": "next year"}') AS s \gset
SELECT workflow, input, run_at > now() + interval '360 days' AS next_year, fired_run_id IS NULL AS pending, error
FROM hatchet.list_schedules('nightly');
SELECT hatchet.delete_schedule(:'s') AS deleted, hatchet.delete_schedule(:'s') AS deleted_again;
BEGIN;
SELECT hatchet.schedule('nightly', '2020-06-01 12:00:00+00', '{"when": "overdue"}', '{"k": "v"}', 2) AS s \gset
SELECT hatchet._run_time_triggers() AS next_due \gset
SELECT s.fired_run_id = r.id AS fired, r.input, r.priority, r.triggered_by, r.additional_metadata
FROM hatchet.list_schedules('nightly') s JOIN hatchet.runs r ON r.id = s.fired_run_id;
SELECT count(*) AS pending FROM hatchet.list_schedules('nightly') WHERE fired_run_id IS NULL;
SELECT hatchet._run_time_triggers() AS next_due \gset
SELECT count(*) AS runs FROM hatchet.runs WHERE additional_metadata->>'hatchet__triggered_by' = 'schedule'
                                             AND input->>'when' = 'overdue';
SELECT input FROM hatchet.dequeue('nightly:t');
-- Schedules that fired more than hatchet.retention_days ago are deleted by the pass.
UPDATE hatchet.scheduled_runs SET fired_run_id = '016b0000-0000-7000-8000-000000000000' WHERE id = :'s';  -- 2019
SELECT hatchet._run_time_triggers() AS next_due \gset
SELECT count(*) AS old_fired_schedules FROM hatchet.scheduled_runs WHERE id = :'s';
COMMIT;
SELECT pg_temp.err($$SELECT hatchet.schedule('nightly', NULL)$$) AS null_run_at;
SELECT pg_temp.err($$SELECT hatchet.schedule('nightly', 'infinity')$$) AS infinite_run_at;
SELECT pg_temp.err($$SELECT hatchet.schedule('nope', now())$$) AS unknown_workflow;
SELECT pg_temp.err($$SELECT hatchet.schedule('nightly', now(), '"x"')$$) AS string_input;
