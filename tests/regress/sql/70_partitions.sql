-- History partitions: created ahead of today, dropped after retention, never while they hold unfinished work.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

-- Every history table has partitions from yesterday to today + hatchet.partition_days_ahead.
SELECT p.relname AS parent, count(*) >= 5 AS has_ahead,
       bool_or(c.relname = p.relname || '_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')) AS has_today
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relnamespace = 'hatchet'::regnamespace AND p.relkind = 'p'
GROUP BY p.relname ORDER BY p.relname;

BEGIN;
-- Old partitions (as if left from 40 and 41 days ago) are dropped by retention ...
DO $$
DECLARE d date;
BEGIN
    FOREACH d IN ARRAY ARRAY[(now() AT TIME ZONE 'UTC')::date - 41, (now() AT TIME ZONE 'UTC')::date - 40] LOOP
        EXECUTE format('CREATE TABLE hatchet.%I PARTITION OF hatchet.tasks FOR VALUES FROM (%L) TO (%L)',
                       'tasks_p' || to_char(d, 'YYYYMMDD'), d::timestamp AT TIME ZONE 'UTC',
                       (d + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$;
INSERT INTO hatchet.tasks (tenant_id, inserted_at, id, run_id, execution_timeout, schedule_timeout, priority, queue, input)
VALUES (hatchet.default_tenant(), ((now() AT TIME ZONE 'UTC')::date - 41 + time '12:00') AT TIME ZONE 'UTC', gen_random_uuid(), gen_random_uuid(), '1m', '5m', 1, 'old', '{}');
-- ... except one that still holds a task with an attempt in flight: it pins itself and every later day.
INSERT INTO hatchet.ready_queue (tenant_id, task_id, task_inserted_at, schedule_timeout_at, priority, queue)
SELECT tenant_id, id, inserted_at, now() + interval '1 hour', 1, 'old' FROM hatchet.tasks WHERE queue = 'old';
SELECT action, count(*) FROM hatchet.maintain_partitions(retention_days => 30) GROUP BY action ORDER BY action;
DELETE FROM hatchet.ready_queue WHERE queue = 'old';
SELECT action, count(*) FROM hatchet.maintain_partitions(retention_days => 30) GROUP BY action ORDER BY action;
SELECT count(*) AS old_tasks_left FROM hatchet.tasks WHERE queue = 'old';
-- Running it again changes nothing.
SELECT count(*) AS no_changes FROM hatchet.maintain_partitions(retention_days => 30);
ROLLBACK;

SELECT pg_temp.err($$SELECT * FROM hatchet.maintain_partitions(days_ahead => 0)$$) AS bad_days_ahead;
SELECT pg_temp.err($$SELECT * FROM hatchet.maintain_partitions(retention_days => 0)$$) AS bad_retention;
