-- After `ALTER EXTENSION pg_hatchet UPDATE`: the work before.sql left in every state is still there and finishes
-- through the current version's functions. Uses the current SQL API (and, where a test must move time forward,
-- the current tables: delayed_queue.ready_at, crons.next_tick_at, scheduled_runs.run_at).
-- Each check prints one line `check ok: NAME` or `check FAILED: NAME: ...`; tests/upgrade/run.sh shows and counts them.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
SET client_min_messages = warning;

CREATE FUNCTION pg_temp.is(name text, got text, want text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN got IS NOT DISTINCT FROM want THEN 'check ok: after: ' || name
                ELSE format('check FAILED: after: %s: got %s, want %s', name, coalesce(got, 'NULL'),
                            coalesce(want, 'NULL')) END $$;
CREATE FUNCTION pg_temp.id(n text) RETURNS uuid LANGUAGE sql AS $$ SELECT id FROM public.upgrade_ids WHERE name = n $$;
CREATE FUNCTION pg_temp.status(run uuid, task text) RETURNS text LANGUAGE sql AS $$
    SELECT status FROM hatchet.run_tasks(run) WHERE readable_id = task $$;
-- A SQL worker: claim one task of a queue, complete it with an output, return what it was given.
CREATE FUNCTION pg_temp.work(q text, output jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
    SELECT * INTO t FROM hatchet.dequeue(q, 'new-worker');
    IF NOT FOUND THEN RETURN NULL; END IF;
    PERFORM hatchet.complete(t.task_id, t.retry_count, output);
    RETURN jsonb_build_object('task_id', t.task_id, 'input', t.input);
END $$;

-- The dashboard's status filter against hatchet.run_status, for every workflow run in the database: each status
-- followed by "exact" when dashboard_runs(with_status) lists exactly the runs in that status, newest first.
CREATE FUNCTION pg_temp.status_filters() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(x.s || CASE WHEN ARRAY(SELECT d.id FROM hatchet.dashboard_runs(with_status => x.s, "limit" => 500) d)
                                     = ARRAY(SELECT r.id FROM hatchet.runs r
                                             WHERE r.workflow_version_id IS NOT NULL AND hatchet.run_status(r.id) = x.s
                                             ORDER BY r.inserted_at DESC, r.id DESC)
                                THEN ' exact' ELSE ' WRONG' END, ', ' ORDER BY x.n)
    FROM unnest(ARRAY['QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED']) WITH ORDINALITY x(s, n) $$;

-- Nothing moved during the upgrade.
SELECT pg_temp.is('states kept across the upgrade',
                  concat_ws(' ', hatchet.task_status(pg_temp.id('queued')), hatchet.task_status(pg_temp.id('delayed')),
                            hatchet.task_status(pg_temp.id('running')), hatchet.task_status(pg_temp.id('conc1')),
                            hatchet.task_status(pg_temp.id('conc2')), hatchet.run_status(pg_temp.id('dag')),
                            pg_temp.status(pg_temp.id('wait'), 't'), pg_temp.status(pg_temp.id('nap'), 't')),
                  'QUEUED QUEUED RUNNING RUNNING QUEUED RUNNING PENDING PENDING');

-- runs that finished before the update: the status filter finds them (run_outcomes was filled from their events)
SELECT pg_temp.is('finished runs are found by their status',
                  concat_ws(' ', (SELECT string_agg(u.name, ',' ORDER BY u.name) FROM upgrade_ids u
                                  JOIN hatchet.dashboard_runs(with_status => 'COMPLETED', "limit" => 500) d ON d.id = u.id),
                            (SELECT string_agg(u.name, ',' ORDER BY u.name) FROM upgrade_ids u
                             JOIN hatchet.dashboard_runs(with_status => 'FAILED', "limit" => 500) d ON d.id = u.id),
                            (SELECT string_agg(u.name, ',' ORDER BY u.name) FROM upgrade_ids u
                             JOIN hatchet.dashboard_runs(with_status => 'CANCELLED', "limit" => 500) d ON d.id = u.id)),
                  'dag_done dag_failed dag_cancelled');
SELECT pg_temp.is('status filters right after the update', pg_temp.status_filters(),
                  'QUEUED exact, RUNNING exact, COMPLETED exact, FAILED exact, CANCELLED exact');

-- running: completed through the new version
SELECT hatchet.complete(pg_temp.id('running'), 0, '{"done": true}');
SELECT pg_temp.is('running task completes', hatchet.task_status(pg_temp.id('running')), 'COMPLETED');
SELECT pg_temp.is('its timeline spans both versions', string_agg(event_type, ' ' ORDER BY created_at, event_type),
                  'QUEUED ASSIGNED COMPLETED')
FROM hatchet.task_events(pg_temp.id('running'));

-- queued: claimed and completed
SELECT pg_temp.is('queued task is claimed', (pg_temp.work('up_queued') ->> 'task_id'), pg_temp.id('queued')::text);
SELECT pg_temp.is('queued task completes', hatchet.task_status(pg_temp.id('queued')), 'COMPLETED');

-- delayed: not before its time; once due, promoted by the maintenance pass, claimed and completed
SELECT pg_temp.is('delayed task is not claimable yet', (SELECT count(*) FROM hatchet.dequeue('up_delayed'))::text, '0');
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE task_id = pg_temp.id('delayed');
SELECT hatchet.run_maintenance();
SELECT pg_temp.is('delayed task is claimed once due', (pg_temp.work('up_delayed') ->> 'task_id'),
                  pg_temp.id('delayed')::text);
SELECT pg_temp.is('delayed task completes', hatchet.task_status(pg_temp.id('delayed')), 'COMPLETED');

-- concurrency: completing the holder admits the next, one at a time, in arrival order
SELECT hatchet.complete(pg_temp.id('conc1'), 0);
SELECT pg_temp.is('second of the group admitted', (pg_temp.work('up_conc') ->> 'task_id'), pg_temp.id('conc2')::text);
SELECT pg_temp.is('third of the group admitted', (pg_temp.work('up_conc') ->> 'task_id'), pg_temp.id('conc3')::text);
SELECT pg_temp.is('concurrency group drained',
                  concat_ws(' ', hatchet.task_status(pg_temp.id('conc1')), hatchet.task_status(pg_temp.id('conc2')),
                            hatchet.task_status(pg_temp.id('conc3')),
                            (SELECT count(*) FROM hatchet.concurrency_queue WHERE queue = 'up_conc'),
                            (SELECT sum(running) FROM hatchet.concurrency_groups WHERE key = 'k')),
                  'COMPLETED COMPLETED COMPLETED 0 0');

-- the DAG: b then c, which sees b's output
SELECT pg_temp.is('DAG task b gets a''s output', pg_temp.work('up_dag:b', '{"b": 2}') #>> '{input,parents,a,a}', '1');
SELECT pg_temp.is('DAG task c gets b''s output', pg_temp.work('up_dag:c', '{"c": 3}') #>> '{input,parents,b,b}', '2');
SELECT pg_temp.is('DAG run completes', hatchet.run_status(pg_temp.id('dag')), 'COMPLETED');

-- the event condition, satisfied by push_event
SELECT hatchet.push_event('up:go', '{"go": true}') IS NOT NULL;
SELECT pg_temp.is('event satisfies the condition', pg_temp.status(pg_temp.id('wait'), 't'), 'QUEUED');
SELECT pg_temp.is('the task sees the event', pg_temp.work('up_wait:t') #>> '{input,triggers,go,go}', 'true');
SELECT pg_temp.is('event-waiting run completes', hatchet.run_status(pg_temp.id('wait')), 'COMPLETED');

-- the sleep condition: once its 2 s are over, the maintenance pass wakes it
SELECT pg_sleep(greatest(0, extract(epoch FROM max(wake_at) - clock_timestamp())::float8 + 0.05))
FROM hatchet.matches WHERE run_id = pg_temp.id('nap');
SELECT hatchet.run_maintenance();
SELECT pg_temp.is('sleep wakes the task', pg_temp.status(pg_temp.id('nap'), 't'), 'QUEUED');
SELECT pg_temp.work('up_nap:t') IS NOT NULL;
SELECT pg_temp.is('sleeping run completes', hatchet.run_status(pg_temp.id('nap')), 'COMPLETED');

-- the cron and the schedule: still listed; fire when due
SELECT pg_temp.is('cron still listed', string_agg(name || ' ' || expression, ','), 'nightly 0 2 * * *')
FROM hatchet.list_crons('up_cron') WHERE cron_id = pg_temp.id('cron');
SELECT pg_temp.is('schedule still pending', count(*)::text, '1')
FROM hatchet.list_schedules('up_cron') WHERE schedule_id = pg_temp.id('schedule') AND fired_run_id IS NULL;
UPDATE hatchet.crons SET next_tick_at = now() - interval '1 minute' WHERE id = pg_temp.id('cron');
UPDATE hatchet.scheduled_runs SET run_at = now() - interval '1 second' WHERE id = pg_temp.id('schedule');
SELECT hatchet.run_maintenance();
SELECT pg_temp.is('cron fired and moved on', (last_tick_at IS NOT NULL AND next_tick_at > now())::text, 'true')
FROM hatchet.list_crons('up_cron') WHERE cron_id = pg_temp.id('cron');
SELECT pg_temp.is('schedule fired', (fired_run_id IS NOT NULL)::text, 'true')
FROM hatchet.list_schedules('up_cron') WHERE schedule_id = pg_temp.id('schedule');
SELECT pg_temp.is('cron and schedule runs queued', string_agg(input #>> '{input}', ' ' ORDER BY input #>> '{input}'),
                  '{"c": 1} {"s": 1}')
FROM hatchet.dequeue('up_cron:job', 'new-worker', 10);
SELECT hatchet.complete(task_id, 0) FROM hatchet.running WHERE queue = 'up_cron:job';
SELECT pg_temp.is('schedule''s run completes', hatchet.run_status(fired_run_id), 'COMPLETED')
FROM hatchet.list_schedules('up_cron') WHERE schedule_id = pg_temp.id('schedule');

-- the rate limit: two units left of three; a third task is refused (parked, still QUEUED) until the window refills
SELECT pg_temp.is('rate limit kept what was used', remaining::text, '2') FROM hatchet.list_rate_limits('up_rl');
SELECT count(*) FROM unnest(hatchet.enqueue_many('up_rl', ARRAY['{"n": 2}', '{"n": 3}', '{"n": 4}']::jsonb[],
                                                 rate_limits => '[{"key": "up_rl"}]'));
SELECT pg_temp.is('only the two units left are dispatched', count(*)::text, '2') FROM hatchet.dequeue('up_rl', n => 10);
SELECT pg_temp.is('rate limit used up', remaining::text, '0') FROM hatchet.list_rate_limits('up_rl');
SELECT pg_temp.is('the third waits for the window', count(*)::text || ' ' || min(hatchet.task_status(task_id)),
                  '1 QUEUED')
FROM hatchet.delayed_queue WHERE queue = 'up_rl';
SELECT hatchet.complete(task_id, 0) FROM hatchet.running WHERE queue = 'up_rl';

-- nothing left behind but the task parked by the rate limit
SELECT pg_temp.is('queues drained',
                  concat_ws(' ', (SELECT count(*) FROM hatchet.ready_queue), (SELECT count(*) FROM hatchet.running),
                            (SELECT count(*) FROM hatchet.concurrency_queue), (SELECT count(*) FROM hatchet.matches),
                            (SELECT count(*) FROM hatchet.delayed_queue)),
                  '0 0 0 0 1');
SELECT pg_temp.is('status filters after the work finished through the new version', pg_temp.status_filters(),
                  'QUEUED exact, RUNNING exact, COMPLETED exact, FAILED exact, CANCELLED exact');
