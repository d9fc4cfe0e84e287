-- Paused workflows (hold, queue TTL, DROP for crons and schedules), deleting a workflow, worker labels given at
-- trigger time, a child run's parent in assign, task metrics, and Hatchet's execution-timeout text (issue 20).
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
SELECT hatchet.register_workflow('{"name": "held", "tasks": [{"readable_id": "t", "action": "held:t"}]}') IS NOT NULL AS held;
SELECT hatchet.register_workflow('{"name": "free", "tasks": [{"readable_id": "t", "action": "free:t"}]}') IS NOT NULL AS free;
SELECT id AS wf FROM hatchet.list_workflows('held') \gset
SELECT hatchet.register_worker('w-a', ARRAY['held:t', 'free:t'], '{"default": 10}', labels => '{"zone": "a"}',
                               worker_id => '00000000-0000-7000-8000-00000000000a') IS NOT NULL AS a;
SELECT hatchet.register_worker('w-b', ARRAY['held:t', 'free:t'], '{"default": 10}', labels => '{"zone": "b"}',
                               worker_id => '00000000-0000-7000-8000-00000000000b') IS NOT NULL AS b;

-- Paused: the run is created and stays queued; the other workflow's run is assigned.
SELECT hatchet.pause_workflow(:'wf', queue_ttl => '1 hour') = :'wf' AS paused;
SELECT is_paused FROM hatchet.list_workflows('held');
SELECT hatchet.run_workflow('held') AS held_run \gset
SELECT hatchet.run_workflow('free') AS free_run \gset
SELECT queue FROM hatchet.assign() ORDER BY queue;
SELECT hatchet.run_status(:'held_run') AS held_status;
SELECT task_name, state, queue, count FROM hatchet.task_stats() WHERE queue IN ('held:t', 'free:t') ORDER BY 1, 2;
-- A version registered while paused is held too.
SELECT hatchet.register_workflow('{"name": "held", "tasks": [{"readable_id": "u", "action": "held:u"}]}') IS NOT NULL AS v2;
SELECT queue FROM hatchet.paused_queues ORDER BY queue;
-- Bad settings are refused and change nothing.
SELECT pg_temp.err($$SELECT hatchet.pause_workflow('$$ || :'wf' || $$', queue_ttl => '0 seconds')$$) AS zero_ttl;
SELECT pg_temp.err($$SELECT hatchet.pause_workflow('$$ || :'wf' || $$', cron_behavior => 'LATER')$$) AS bad_behavior;
SELECT pg_temp.err($$SELECT hatchet.pause_workflow(gen_random_uuid())$$) AS unknown;
SELECT paused_queue_ttl, paused_cron_behavior FROM hatchet.workflows WHERE name = 'held';

-- Unpaused: the held attempt is assigned.
SELECT hatchet.unpause_workflow(:'wf') = :'wf' AS unpaused;
SELECT queue FROM hatchet.assign() ORDER BY queue;
SELECT count(*) AS paused_queues_left FROM hatchet.paused_queues;
ROLLBACK;

-- Queue TTL: a held attempt older than the TTL is cancelled by the maintenance pass, with a reason.
BEGIN;
SELECT hatchet.register_workflow('{"name": "held", "tasks": [{"readable_id": "t", "action": "held:t"}]}') IS NOT NULL AS held;
SELECT id AS wf FROM hatchet.list_workflows('held') \gset
SELECT hatchet.pause_workflow(:'wf', queue_ttl => '1 minute') IS NOT NULL AS paused;
SELECT hatchet.run_workflow('held') AS old_run \gset
SELECT hatchet._expire_queued(hatchet.default_tenant(), clock_timestamp(), 100) AS none_yet;
SELECT hatchet._expire_queued(hatchet.default_tenant(), clock_timestamp() + interval '2 minutes', 100) AS expired;
SELECT hatchet.run_status(:'old_run');
SELECT event_type, reason FROM hatchet.run_events(:'old_run') WHERE event_type = 'CANCELLED';
ROLLBACK;

-- DROP: a due cron tick and a due schedule of a paused workflow create no run; QUEUE creates them (held).
BEGIN;
SELECT hatchet.register_workflow('{"name": "held", "tasks": [{"readable_id": "t", "action": "held:t"}]}') IS NOT NULL AS held;
SELECT id AS wf FROM hatchet.list_workflows('held') \gset
SELECT hatchet.create_cron('held', 'every-second', '* * * * * *') IS NOT NULL AS cron;
SELECT hatchet.schedule('held', clock_timestamp() + interval '1 second') IS NOT NULL AS scheduled;
SELECT hatchet.pause_workflow(:'wf', cron_behavior => 'DROP', scheduled_behavior => 'drop') IS NOT NULL AS paused;
SELECT hatchet._tenant_time_triggers(hatchet.default_tenant(), clock_timestamp() + interval '5 seconds', 100);
SELECT count(*) AS runs FROM hatchet.runs r JOIN hatchet.workflow_versions v ON v.id = r.workflow_version_id
WHERE v.workflow_id = (SELECT id FROM hatchet.workflows WHERE name = 'held');
SELECT error FROM hatchet.scheduled_runs;
SELECT next_tick_at > clock_timestamp() AS cron_moved_on FROM hatchet.crons;
SELECT hatchet.pause_workflow(:'wf') IS NOT NULL AS paused_queue;
SELECT hatchet._tenant_time_triggers(hatchet.default_tenant(), clock_timestamp() + interval '10 seconds', 100);
SELECT r.triggered_by, hatchet.run_status(r.id) FROM hatchet.runs r
JOIN hatchet.workflow_versions v ON v.id = r.workflow_version_id
WHERE v.workflow_id = (SELECT id FROM hatchet.workflows WHERE name = 'held');
ROLLBACK;

-- Delete: refused while a run is in progress; then the workflow, its crons and schedules are gone.
BEGIN;
SELECT hatchet.register_workflow('{"name": "doomed", "tasks": [{"readable_id": "t", "action": "doomed:t"}]}') IS NOT NULL AS doomed;
SELECT id AS wf FROM hatchet.list_workflows('doomed') \gset
SELECT hatchet.create_cron('doomed', 'nightly', '0 0 * * *') IS NOT NULL AS cron;
SELECT hatchet.run_workflow('doomed') AS run \gset
SELECT pg_temp.err($$SELECT hatchet.delete_workflow('$$ || :'wf' || $$')$$) AS in_progress;
SELECT hatchet.cancel_run(:'run') AS cancelled;
SELECT hatchet.delete_workflow(:'wf') = :'wf' AS deleted;
SELECT count(*) AS workflows FROM hatchet.list_workflows('doomed');
SELECT count(*) AS crons FROM hatchet.crons;
SELECT hatchet.run_status(:'run') AS old_run_status;
SELECT pg_temp.err($$SELECT hatchet.delete_workflow('$$ || :'wf' || $$')$$) AS again;
ROLLBACK;

-- Worker labels given at trigger time place a task that declares none; a task's own labels win.
BEGIN;
SELECT hatchet.register_workflow('{"name": "where", "tasks": [{"readable_id": "t", "action": "where:t"}]}') IS NOT NULL AS r;
SELECT hatchet.register_workflow('{"name": "pinned", "tasks": [{"readable_id": "t", "action": "pinned:t",
    "worker_labels": {"zone": {"str_value": "a", "required": true}}}]}') IS NOT NULL AS r;
SELECT hatchet.register_workflow('{"name": "chain", "tasks": [{"readable_id": "first", "action": "chain:first"},
    {"readable_id": "second", "action": "chain:second", "parents": ["first"]}]}') IS NOT NULL AS r;
SELECT hatchet.register_worker('w-a', ARRAY['where:t', 'pinned:t', 'chain:first', 'chain:second'], '{"default": 10}',
                               labels => '{"zone": "a"}', worker_id => '00000000-0000-7000-8000-00000000000a') IS NOT NULL AS a;
SELECT hatchet.register_worker('w-b', ARRAY['where:t', 'pinned:t', 'chain:first', 'chain:second'], '{"default": 20}',
                               labels => '{"zone": "b"}', worker_id => '00000000-0000-7000-8000-00000000000b') IS NOT NULL AS b;
SELECT hatchet.run_workflow('where', desired_worker_labels => '{"zone": {"str_value": "a", "required": true}}') IS NOT NULL,
       hatchet.run_workflow('where', desired_worker_labels => '{"zone": {"value": "a", "comparator": "NOT_EQUAL", "required": true}}') IS NOT NULL,
       hatchet.run_workflow('pinned', desired_worker_labels => '{"zone": {"str_value": "b", "required": true}}') IS NOT NULL;
SELECT queue, right(worker_id::text, 1) AS worker FROM hatchet.assign() ORDER BY queue, worker;
-- Every task of a run triggered with labels follows them, not only its first (b has more room: only the labels
-- send the second task to a).
SELECT hatchet.run_workflow('chain', desired_worker_labels => '{"zone": {"str_value": "a", "required": true}}') IS NOT NULL AS chain;
SELECT queue, right(worker_id::text, 1) AS worker, hatchet.complete(task_id, retry_count, '{}') AS completed
FROM hatchet.assign();
SELECT queue, right(worker_id::text, 1) AS worker FROM hatchet.assign();
SELECT pg_temp.err($$SELECT hatchet.run_workflow('where', desired_worker_labels => '[1]')$$) AS not_a_map;
SELECT pg_temp.err($$SELECT hatchet.run_workflow('where', desired_worker_labels => '{"zone": 1}')$$) AS not_an_object;
SELECT pg_temp.err($$SELECT hatchet.run_workflow('where', desired_worker_labels => '{"zone": {"comparator": "EQUAL"}}')$$) AS no_value;
ROLLBACK;

-- A child run's tasks carry their parent's run in assign; metrics count tasks by status.
BEGIN;
SELECT hatchet.register_workflow('{"name": "pkid", "tasks": [{"readable_id": "t", "action": "pkid:t"}]}') IS NOT NULL AS pkid;
SELECT hatchet.register_workflow('{"name": "pmum", "tasks": [{"readable_id": "t", "action": "pmum:t"}]}') IS NOT NULL AS pmum;
SELECT hatchet.register_worker('w', ARRAY['pkid:t', 'pmum:t'], '{"default": 10}',
                               worker_id => '00000000-0000-7000-8000-00000000000c') IS NOT NULL AS w;
SELECT hatchet.run_workflow('pmum') AS mum_run \gset
SELECT task_id AS mum_task FROM hatchet.assign() \gset
SELECT hatchet.run_workflow('pkid', parent_task_id => :'mum_task', child_index => 0) AS kid_run \gset
SELECT coalesce(run_id, task_id) = :'kid_run' AS pkid, parent_run_id = :'mum_run' AS parent_is_mum FROM hatchet.assign();
SELECT status, count FROM hatchet.task_status_counts(since => now() - interval '1 minute',
    workflow_ids => ARRAY(SELECT id FROM hatchet.list_workflows() WHERE name IN ('pmum', 'pkid')));
SELECT status, count FROM hatchet.task_status_counts(since => now() - interval '1 minute', parent_task_id => :'mum_task')
WHERE count > 0;
SELECT status, count FROM hatchet.task_status_counts(since => now() - interval '1 minute',
    workflow_ids => ARRAY[(SELECT id FROM hatchet.list_workflows('pmum'))]) WHERE count > 0;
SELECT sum(count) AS none_before FROM hatchet.task_status_counts(since => now() - interval '2 hours', until => now() - interval '1 hour');
SELECT pg_temp.err($$SELECT * FROM hatchet.task_status_counts(since => NULL)$$) AS no_since;
ROLLBACK;

-- The execution-timeout reason, in Hatchet's words.
SELECT hatchet._timeout_reason(interval '2 seconds'), hatchet._timeout_reason(interval '1.5 seconds'),
       hatchet._timeout_reason(interval '1 hour');
