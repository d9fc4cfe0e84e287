-- The worker registry and hatchet.assign: slots, spreading, labels, sticky, slot cost, heartbeats and dead workers.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
SELECT hatchet.register_worker('w-a', ARRAY['email:send'], '{"default": 2}', '{"region": "eu", "gpu": 1}',
                               worker_id => '00000000-0000-7000-8000-00000000000a') IS NOT NULL AS registered;
SELECT hatchet.register_worker('w-b', ARRAY['email:send', 'pdf:render'], '{"default": 2}', '{"region": "us", "gpu": 4}',
                               worker_id => '00000000-0000-7000-8000-00000000000b') IS NOT NULL AS registered;
SELECT count(*) FROM unnest(hatchet.enqueue_many('email:send', ARRAY(SELECT jsonb_build_object('n', i)
                                                                     FROM generate_series(1, 5) i))) AS x;
-- Four free slots, five tasks: two per worker (ties spread), FIFO, one left queued.
SELECT right(worker_id::text, 1) AS worker, input, retry_count, timeout_at > now() AS has_timeout
FROM hatchet.assign() ORDER BY input ->> 'n';
SELECT right(worker_id::text, 1) AS worker, slot_type, capacity, used FROM hatchet.worker_slots ORDER BY worker_id;
SELECT count(*) AS left_queued FROM hatchet.ready_queue WHERE queue = 'email:send';
SELECT event_type, worker FROM hatchet.task_events((SELECT task_id FROM hatchet.running ORDER BY task_id LIMIT 1));
-- Completing a batch and assigning the next happen in one transaction; the freed slot is used at once.
SELECT hatchet.complete_many(ARRAY(SELECT task_id FROM hatchet.running WHERE worker_id = '00000000-0000-7000-8000-00000000000a'),
                             ARRAY[0, 0]) AS completed;
SELECT right(worker_id::text, 1) AS worker, input FROM hatchet.assign();
SELECT right(worker_id::text, 1) AS worker, used FROM hatchet.worker_slots ORDER BY worker_id;

-- Labels: a required label filters workers; GT compares the worker's value to the desired one.
SELECT hatchet.enqueue('pdf:render', '{"job": "needs-us"}',
                       desired_worker_labels => '{"region": {"value": "us", "required": true}}') IS NOT NULL AS queued;
SELECT hatchet.enqueue('email:send', '{"job": "needs-big-gpu"}',
                       desired_worker_labels => '{"gpu": {"value": 2, "comparator": "GT", "required": true}}') IS NOT NULL AS queued;
SELECT hatchet.complete_many(ARRAY(SELECT task_id FROM hatchet.running), ARRAY(SELECT retry_count FROM hatchet.running)) AS completed;
SELECT right(worker_id::text, 1) AS worker, input FROM hatchet.assign() ORDER BY input::text;
-- A required label no worker has: the task stays queued rather than running in the wrong place.
SELECT hatchet.enqueue('email:send', '{"job": "needs-asia"}',
                       desired_worker_labels => '{"region": {"value": "asia", "required": true}}') AS asia \gset
SELECT count(*) AS assigned FROM hatchet.assign(max_tasks => 10) WHERE input ->> 'job' = 'needs-asia';
SELECT hatchet.task_status(:'asia');
SELECT hatchet.cancel(:'asia');
-- A weighted (not required) label prefers the better worker when both have room.
SELECT hatchet.complete_many(ARRAY(SELECT task_id FROM hatchet.running), ARRAY(SELECT retry_count FROM hatchet.running)) AS completed;
SELECT hatchet.enqueue('email:send', '{"job": "prefers-eu"}',
                       desired_worker_labels => '{"region": {"value": "eu", "required": false, "weight": 50}}') IS NOT NULL AS queued;
SELECT right(worker_id::text, 1) AS worker, input FROM hatchet.assign();

-- Sticky: HARD only runs on the desired worker, SOFT prefers it.
SELECT hatchet.complete_many(ARRAY(SELECT task_id FROM hatchet.running), ARRAY(SELECT retry_count FROM hatchet.running)) AS completed;
SELECT hatchet.enqueue('email:send', '{"job": "hard-b"}', desired_worker_id => '00000000-0000-7000-8000-00000000000b',
                       sticky => 'HARD') IS NOT NULL AS queued;
SELECT hatchet.enqueue('email:send', '{"job": "soft-a"}', desired_worker_id => '00000000-0000-7000-8000-00000000000a',
                       sticky => 'SOFT') IS NOT NULL AS queued;
SELECT right(worker_id::text, 1) AS worker, input FROM hatchet.assign() ORDER BY input::text;

-- Only the given workers; a paused worker gets nothing.
SELECT hatchet.complete_many(ARRAY(SELECT task_id FROM hatchet.running), ARRAY(SELECT retry_count FROM hatchet.running)) AS completed;
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000000b', true);
SELECT count(*) FROM unnest(hatchet.enqueue_many('email:send', array_fill('{}'::jsonb, ARRAY[3]))) AS x;
SELECT right(worker_id::text, 1) AS worker, count(*) FROM hatchet.assign() GROUP BY worker_id;
ROLLBACK;

BEGIN;
-- A worker with no heartbeat for hatchet.worker_dead_after_ms is dead: its attempts are retried (internal retry,
-- not counted against the task's own retries) and it gets nothing more.
SELECT hatchet.register_worker('w-dead', ARRAY['dead:q'], '{"default": 5}',
                               worker_id => '00000000-0000-7000-8000-0000000000dd') IS NOT NULL AS registered;
SELECT hatchet.enqueue('dead:q', '{"n": 1}') AS d \gset
SELECT count(*) FROM hatchet.assign();
SELECT hatchet.heartbeat(ARRAY['00000000-0000-7000-8000-0000000000dd'::uuid]) AS alive;
UPDATE hatchet.workers SET last_heartbeat_at = now() - interval '1 minute' WHERE name = 'w-dead';
SELECT hatchet._reap_dead_workers(hatchet.default_tenant(), clock_timestamp()) AS reassigned;
SELECT retry_count, internal_retry_count, app_retry_count, priority FROM hatchet.ready_queue WHERE task_id = :'d';
SELECT event_type, reason FROM hatchet.task_events(:'d') WHERE event_type = 'REASSIGNED';
SELECT is_active, (SELECT used FROM hatchet.worker_slots WHERE worker_id = w.id) AS used FROM hatchet.workers w WHERE name = 'w-dead';
SELECT hatchet.heartbeat(ARRAY['00000000-0000-7000-8000-0000000000dd'::uuid]) AS dead_worker_cannot_heartbeat;
SELECT count(*) AS nothing_for_the_dead FROM hatchet.assign();
-- Slot cost: a task that needs 3 units gets them from one worker.
SELECT hatchet.register_worker('w-big', ARRAY['dead:q'], '{"default": 4}',
                               worker_id => '00000000-0000-7000-8000-0000000000bb') IS NOT NULL AS registered;
UPDATE hatchet.tasks SET slot_units = 3 WHERE id = :'d';
SELECT right(worker_id::text, 2) AS worker, retry_count FROM hatchet.assign();
SELECT used FROM hatchet.worker_slots WHERE worker_id = '00000000-0000-7000-8000-0000000000bb';
ROLLBACK;

SELECT pg_temp.err($$SELECT hatchet.register_worker('', ARRAY['a'])$$) AS empty_name;
SELECT pg_temp.err($$SELECT hatchet.register_worker('w', ARRAY['a'], '{"default": -1}')$$) AS negative_slots;
SELECT pg_temp.err($$SELECT hatchet.register_worker('w', ARRAY['a'], '[1]')$$) AS slots_not_object;
SELECT pg_temp.err($$SELECT hatchet.set_worker_paused(gen_random_uuid(), true)$$) AS unknown_worker;
SELECT pg_temp.err($$SELECT * FROM hatchet.assign(max_tasks => 0)$$) AS zero_max;
SELECT pg_temp.err($$SELECT * FROM hatchet.try_assign(NULL, lock_wait_ms => 0)$$) AS zero_lock_wait;
SELECT pg_temp.err($$SELECT * FROM hatchet.try_assign(NULL, lock_wait_ms => NULL)$$) AS null_lock_wait;

-- hatchet.try_assign (the server's assignment in a trigger's transaction) assigns as hatchet.assign does, in the
-- caller's transaction, and leaves the caller's lock_timeout as it was.
BEGIN;
SET LOCAL lock_timeout = '7s';
SELECT hatchet.register_worker('w-try', ARRAY['try:q'], '{"default": 1}',
                               worker_id => '00000000-0000-7000-8000-0000000000ee') IS NOT NULL AS registered;
SELECT count(*) FROM unnest(hatchet.enqueue_many('try:q', ARRAY['{"n": 1}', '{"n": 2}']::jsonb[])) AS x;
SELECT right(worker_id::text, 2) AS worker, input
FROM hatchet.try_assign(ARRAY['00000000-0000-7000-8000-0000000000ee'::uuid], lock_wait_ms => 25);
SELECT count(*) AS no_free_slot FROM hatchet.try_assign(ARRAY['00000000-0000-7000-8000-0000000000ee'::uuid]);
SELECT count(*) AS left_queued FROM hatchet.ready_queue WHERE queue = 'try:q';
SHOW lock_timeout;
ROLLBACK;
SELECT pg_temp.err($$SELECT * FROM hatchet.try_assign(NULL, max_tasks => 0)$$) AS zero_max_try;

-- Any other failure inside the assignment (here a trigger that raises on every new running row) leaves nothing
-- assigned and the caller's transaction usable: a trigger's run is never lost to its assignment.
BEGIN;
SELECT hatchet.register_worker('w-try', ARRAY['try:q'], '{"default": 1}',
                               worker_id => '00000000-0000-7000-8000-0000000000ee') IS NOT NULL AS registered;
SELECT count(*) FROM unnest(hatchet.enqueue_many('try:q', ARRAY['{"n": 1}']::jsonb[])) AS x;
CREATE FUNCTION pg_temp.boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$;
CREATE TRIGGER boom BEFORE INSERT ON hatchet.running FOR EACH ROW EXECUTE FUNCTION pg_temp.boom();
SELECT count(*) AS assigned_despite_error
FROM hatchet.try_assign(ARRAY['00000000-0000-7000-8000-0000000000ee'::uuid], lock_wait_ms => 25);
SELECT count(*) AS still_queued FROM hatchet.ready_queue WHERE queue = 'try:q';
SELECT used AS slot_not_taken FROM hatchet.worker_slots WHERE worker_id = '00000000-0000-7000-8000-0000000000ee';
DROP TRIGGER boom ON hatchet.running;
SELECT count(*) AS assigned_after FROM hatchet.try_assign(ARRAY['00000000-0000-7000-8000-0000000000ee'::uuid]);
ROLLBACK;
SELECT pg_temp.err($$SELECT hatchet.enqueue('x', desired_worker_labels => '{"gpu": {"value": 1, "comparator": "ABOUT"}}')$$) AS bad_comparator;
SELECT pg_temp.err($$SELECT hatchet.enqueue('x', sticky => 'HARD')$$) AS sticky_without_worker;
SELECT count(*) AS no_workers_left FROM hatchet.workers WHERE name = 'w';
