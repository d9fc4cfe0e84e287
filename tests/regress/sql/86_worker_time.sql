-- The background worker fires crons, schedules and sleeps on its own, in real time. Outcomes are polled (up to 20 s)
-- and counts are asserted within bounds, never exact timings.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.wait_for(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE ok boolean;
BEGIN
    FOR i IN 1..200 LOOP
        EXECUTE q INTO ok;
        IF ok THEN RETURN true; END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN false;
END $$;
CREATE FUNCTION pg_temp.ticks() RETURNS TABLE (scheduled_at timestamptz, created_at timestamptz) LANGUAGE sql AS $$
    SELECT (additional_metadata->>'hatchet__scheduled_at')::timestamptz, inserted_at FROM hatchet.runs
    WHERE additional_metadata->>'hatchet__cron_name' = 'every-second' $$;

SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'pg_hatchet worker'
                                         AND datname = current_database())$$) AS worker_running;
SELECT hatchet.register_workflow('{"name": "ticker", "tasks": [{"readable_id": "tick"}]}') IS NOT NULL AS registered;

-- A cron with a seconds field fires once a second.
SELECT hatchet.create_cron('ticker', 'every-second', '* * * * * *') AS c \gset
SELECT pg_temp.wait_for('SELECT count(*) >= 1 FROM pg_temp.ticks()') AS first_tick;
SELECT count(*) AS ticks_before FROM pg_temp.ticks() \gset
SELECT pg_sleep(4);
SELECT count(*) - :ticks_before AS ticks_in_4s FROM pg_temp.ticks() \gset
SELECT :ticks_in_4s BETWEEN 3 AND 6 AS about_one_per_second;
-- Each tick fired once, never before it was due, one second apart.
SELECT count(*) = count(DISTINCT scheduled_at) AS no_tick_twice, bool_and(created_at >= scheduled_at) AS never_early,
       bool_and(extract(milliseconds FROM scheduled_at)::integer % 1000 = 0) AS on_whole_seconds
FROM pg_temp.ticks();
SELECT hatchet.delete_cron(:'c') AS deleted;
SELECT count(*) AS ticks_after_delete FROM pg_temp.ticks() \gset
SELECT pg_sleep(1.5);
SELECT count(*) - :ticks_after_delete AS ticks_since_delete FROM pg_temp.ticks();
SELECT count(hatchet.cancel(r.task_id)) >= 0 AS cleaned FROM hatchet.ready_queue r WHERE r.queue = 'ticker:tick';

-- A schedule one second ahead is fired by the worker, once, not before it was due.
SELECT hatchet.schedule('ticker', clock_timestamp() + interval '1 second', '{"scheduled": true}') AS s \gset
SELECT pg_temp.wait_for(format('SELECT fired_run_id IS NOT NULL FROM hatchet.scheduled_runs WHERE id = %L', :'s'))
    AS schedule_fired;
SELECT hatchet.uuid_time(s.fired_run_id) >= date_trunc('milliseconds', s.run_at) AS not_early, r.input
FROM hatchet.scheduled_runs s JOIN hatchet.runs r ON r.id = s.fired_run_id WHERE s.id = :'s';
-- The worker's next wake-up accounts for pending schedules.
SELECT hatchet.schedule('ticker', clock_timestamp() + interval '1 hour') AS later \gset
SELECT hatchet.run_maintenance() <= run_at AS wakes_in_time FROM hatchet.scheduled_runs WHERE id = :'later';
SELECT hatchet.delete_schedule(:'later');

-- A sleep condition is woken by the worker.
SELECT hatchet.register_workflow('{"name": "short_nap", "tasks": [{"readable_id": "t",
    "conditions": {"wait_for": [{"kind": "sleep", "sleep_for": "1s"}]}}]}') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('short_nap') AS run \gset
SELECT hatchet.run_status(:'run') AS while_sleeping;
SELECT pg_temp.wait_for(format('SELECT EXISTS (SELECT 1 FROM hatchet.ready_queue WHERE task_id = %L)', :'run'))
    AS woken;
SELECT hatchet.task_status(:'run') AS task_after_sleep;
SELECT count(hatchet.cancel(r.task_id)) >= 0 AS cleaned FROM hatchet.ready_queue r
WHERE r.queue IN ('ticker:tick', 'short_nap:t');
