-- Work in every state, created with a released version of pg_hatchet (tests/upgrade/run.sh runs this right after
-- `CREATE EXTENSION pg_hatchet VERSION '<release>'`, then `ALTER EXTENSION pg_hatchet UPDATE`, then after.sql).
--
-- Only the SQL API of the oldest release in sql/releases/ may be used here (0.1.0: docs/sql-api.md as of then).
-- The ids that after.sql needs are kept in public.upgrade_ids, outside the extension's schema.
-- Each check prints one line `check ok: NAME` or `check FAILED: NAME: ...`; run.sh shows and counts those lines.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
SET client_min_messages = warning;

CREATE FUNCTION pg_temp.is(name text, got text, want text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN got IS NOT DISTINCT FROM want THEN 'check ok: before: ' || name
                ELSE format('check FAILED: before: %s: got %s, want %s', name, coalesce(got, 'NULL'),
                            coalesce(want, 'NULL')) END $$;
CREATE FUNCTION pg_temp.status(run uuid, task text) RETURNS text LANGUAGE sql AS $$
    SELECT status FROM hatchet.run_tasks(run) WHERE readable_id = task $$;
-- A SQL worker: claim one task of a queue and complete it with an output.
CREATE FUNCTION pg_temp.work(q text, output jsonb DEFAULT '{}') RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
    SELECT * INTO t FROM hatchet.dequeue(q, 'old-worker');
    IF NOT FOUND THEN RETURN NULL; END IF;
    PERFORM hatchet.complete(t.task_id, t.retry_count, output);
    RETURN t.task_id;
END $$;

CREATE TABLE public.upgrade_ids (name text PRIMARY KEY, id uuid NOT NULL);

-- queued: ready, nobody claimed it
INSERT INTO upgrade_ids SELECT 'queued', hatchet.enqueue('up_queued', '{"n": "queued"}');
SELECT pg_temp.is('queued task is QUEUED', hatchet.task_status(id), 'QUEUED') FROM upgrade_ids WHERE name = 'queued';

-- delayed: run_at in an hour
INSERT INTO upgrade_ids
SELECT 'delayed', hatchet.enqueue('up_delayed', '{"n": "delayed"}', run_at => now() + interval '1 hour');
SELECT pg_temp.is('delayed task waits in delayed_queue',
                  (SELECT count(*) FROM hatchet.delayed_queue d WHERE d.task_id = u.id)::text, '1')
FROM upgrade_ids u WHERE name = 'delayed';

-- running: claimed, not finished (a long execution timeout: the test's maintenance passes must not time it out)
INSERT INTO upgrade_ids
SELECT 'running', hatchet.enqueue('up_running', '{"n": "running"}', execution_timeout => '1h');
SELECT count(*) FROM hatchet.dequeue('up_running', 'old-worker');
SELECT pg_temp.is('running task is RUNNING', hatchet.task_status(id), 'RUNNING') FROM upgrade_ids WHERE name = 'running';

-- concurrency: max_runs 1 on key k, three tasks: the first runs, two wait in the concurrency queue
INSERT INTO upgrade_ids
SELECT 'conc' || n, id
FROM unnest(hatchet.enqueue_many('up_conc', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[],
                                 concurrency_key => 'k', max_runs => 1)) WITH ORDINALITY AS x(id, n);
SELECT count(*) FROM hatchet.dequeue('up_conc', 'old-worker', 10);
SELECT pg_temp.is('first of the concurrency group runs', hatchet.task_status(id), 'RUNNING')
FROM upgrade_ids WHERE name = 'conc1';
SELECT pg_temp.is('two wait in the concurrency queue',
                  (SELECT count(*) FROM hatchet.concurrency_queue WHERE queue = 'up_conc')::text, '2');

-- a DAG half done: a -> b -> c, a completed, b queued, c waiting for b
SELECT hatchet.register_workflow('{"name": "up_dag", "tasks": [{"readable_id": "a"},
    {"readable_id": "b", "parents": ["a"]}, {"readable_id": "c", "parents": ["b"]}]}') IS NOT NULL;
-- finished runs of the same DAG (before the half-done one, so that its tasks are claimed first): one completed, one
-- failed (a failed, b and c cancelled), one cancelled while queued; the update fills hatchet.run_outcomes from them
INSERT INTO upgrade_ids SELECT 'dag_done', hatchet.run_workflow('up_dag', '{"order": 4}');
INSERT INTO upgrade_ids SELECT 'dag_failed', hatchet.run_workflow('up_dag', '{"order": 5}');
INSERT INTO upgrade_ids SELECT 'dag_cancelled', hatchet.run_workflow('up_dag', '{"order": 6}');
SELECT hatchet.cancel_run(id) FROM upgrade_ids WHERE name = 'dag_cancelled';
SELECT pg_temp.work('up_dag:a') IS NOT NULL;
SELECT hatchet.fail(t.task_id, t.retry_count, 'boom', retryable => false) FROM hatchet.dequeue('up_dag:a', 'old-worker') t;
SELECT pg_temp.work('up_dag:b') IS NOT NULL;
SELECT pg_temp.work('up_dag:c') IS NOT NULL;
SELECT pg_temp.is('finished runs', string_agg(u.name || '=' || hatchet.run_status(u.id), ' ' ORDER BY u.name),
                  'dag_cancelled=CANCELLED dag_done=COMPLETED dag_failed=FAILED')
FROM upgrade_ids u WHERE u.name LIKE 'dag\_%';
INSERT INTO upgrade_ids SELECT 'dag', hatchet.run_workflow('up_dag', '{"order": 7}');
SELECT pg_temp.work('up_dag:a', '{"a": 1}');
SELECT pg_temp.is('DAG is half done', string_agg(readable_id || '=' || status, ' ' ORDER BY readable_id),
                  'a=COMPLETED b=QUEUED c=PENDING')
FROM upgrade_ids u CROSS JOIN hatchet.run_tasks(u.id) WHERE u.name = 'dag';

-- conditions: one task waits for an hour or the user event up:go, one sleeps for 2 seconds
SELECT hatchet.register_workflow('{"name": "up_wait", "tasks": [{"readable_id": "t", "conditions": {"wait_for": [
    {"kind": "sleep", "sleep_for": "1h", "or_group": "g"},
    {"kind": "event", "key": "up:go", "or_group": "g", "data_key": "go"}]}}]}') IS NOT NULL;
INSERT INTO upgrade_ids SELECT 'wait', hatchet.run_workflow('up_wait');
SELECT pg_temp.is('event condition is pending', pg_temp.status(id, 't'), 'PENDING')
FROM upgrade_ids WHERE name = 'wait';
SELECT hatchet.register_workflow('{"name": "up_nap", "tasks": [{"readable_id": "t", "conditions": {"wait_for": [
    {"kind": "sleep", "sleep_for": "2s"}]}}]}') IS NOT NULL;
INSERT INTO upgrade_ids SELECT 'nap', hatchet.run_workflow('up_nap');
SELECT pg_temp.is('sleep condition is pending', pg_temp.status(id, 't'), 'PENDING') FROM upgrade_ids WHERE name = 'nap';

-- a cron and a schedule of a one-task workflow
SELECT hatchet.register_workflow('{"name": "up_cron", "tasks": [{"readable_id": "job"}]}') IS NOT NULL;
INSERT INTO upgrade_ids SELECT 'cron', hatchet.create_cron('up_cron', 'nightly', '0 2 * * *', '{"c": 1}');
INSERT INTO upgrade_ids SELECT 'schedule', hatchet.schedule('up_cron', now() + interval '1 hour', '{"s": 1}');
SELECT pg_temp.is('cron and schedule are listed',
                  (SELECT count(*) FROM hatchet.list_crons('up_cron'))::text || ' '
                  || (SELECT count(*) FROM hatchet.list_schedules('up_cron') WHERE fired_run_id IS NULL)::text,
                  '1 1');

-- a rate limit of 3 per hour, one unit used
SELECT hatchet.put_rate_limit('up_rl', 3, 'HOUR');
INSERT INTO upgrade_ids SELECT 'rl1', hatchet.enqueue('up_rl', '{"n": 1}', rate_limits => '[{"key": "up_rl"}]');
SELECT pg_temp.work('up_rl');
SELECT pg_temp.is('rate limit partly used', remaining::text, '2') FROM hatchet.list_rate_limits('up_rl');
