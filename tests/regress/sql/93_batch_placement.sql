-- Batch tasks honour worker labels, stickiness and rate limits per member (issue 19), as hatchet.assign does for
-- other tasks: a member joins a batch only on a worker its required labels accept and, HARD sticky, only on its
-- desired worker; label weights and SOFT stickiness choose among workers; each member takes its rate-limit units, and
-- members without units left wait for the window (parked), so a window never serves more than its limit. dequeue
-- refuses a batch task's queue.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;
-- Ages the ready members of a queue past any flush interval used here (they have waited 2 s more).
CREATE FUNCTION pg_temp.age(q text) RETURNS void LANGUAGE sql AS $$
    UPDATE hatchet.ready_queue SET schedule_timeout_at = schedule_timeout_at - interval '2 seconds' WHERE queue = q $$;
-- One line per batch handed out: its worker (last character of the id), size, reason and members (input n).
CREATE FUNCTION pg_temp.batches(worker_ids uuid[] DEFAULT NULL)
RETURNS TABLE (worker text, size integer, reason text, members text) LANGUAGE sql AS $$
    SELECT right(a.worker_id::text, 1), a.batch_size, a.trigger_reason,
           string_agg(a.input -> 'input' ->> 'n', ',' ORDER BY a.batch_index)
    FROM hatchet.assign_batches(worker_ids => worker_ids) a
    GROUP BY a.batch_id, a.worker_id, a.batch_size, a.trigger_reason
    ORDER BY min(a.input -> 'input' ->> 'n') $$;

-- 1. Required labels: a batch goes only to a worker whose labels satisfy its members' required labels.
BEGIN;
SELECT hatchet.register_workflow($${"name": "GpuBatch", "tasks": [{"readable_id": "t",
    "worker_labels": {"gpu": {"str_value": "yes", "required": true}},
    "batch": {"batch_max_size": 2, "batch_max_interval_ms": 500}}]}$$) IS NOT NULL AS registered;
SELECT hatchet.register_worker('w-plain', ARRAY['gpubatch:t'], '{"default": 5}',
                               worker_id => '00000000-0000-7000-8000-00000000c10a') IS NOT NULL AS a;
SELECT hatchet.register_worker('w-nogpu', ARRAY['gpubatch:t'], '{"default": 5}', '{"gpu": "no"}',
                               worker_id => '00000000-0000-7000-8000-00000000c10b') IS NOT NULL AS b;
SELECT hatchet.run_workflow('GpuBatch', jsonb_build_object('n', n)) IS NOT NULL AS triggered FROM generate_series(1, 2) n;
-- The batch is full, but no worker has the label: nothing goes, the members wait, no slot is taken.
SELECT * FROM pg_temp.batches();
SELECT pg_temp.age('gpubatch:t');
SELECT * FROM pg_temp.batches();
SELECT count(*) AS still_ready FROM hatchet.ready_queue WHERE queue = 'gpubatch:t';
SELECT sum(used) AS slots_used FROM hatchet.worker_slots WHERE worker_id::text LIKE '%c10_';
-- A worker with the label comes up: the batch goes there.
SELECT hatchet.register_worker('w-gpu', ARRAY['gpubatch:t'], '{"default": 1}', '{"gpu": "yes"}',
                               worker_id => '00000000-0000-7000-8000-00000000c10c') IS NOT NULL AS c;
SELECT * FROM pg_temp.batches();
SELECT right(worker_id::text, 1) AS worker, used FROM hatchet.worker_slots WHERE worker_id::text LIKE '%c10_'
ORDER BY worker_id;
-- dequeue does not hand out a batch task's members one by one: refused with a SQLSTATE, nothing claimed.
SELECT hatchet.run_workflow('GpuBatch', '{"n": 3}') IS NOT NULL AS triggered;
SELECT pg_temp.err($$SELECT * FROM hatchet.dequeue('gpubatch:t')$$) AS dequeue_batch_queue;
SELECT count(*) AS still_ready FROM hatchet.ready_queue WHERE queue = 'gpubatch:t';
ROLLBACK;

-- 2. Members with different placement (labels given per trigger, for a task that declares none) are batched only
-- where each may run: the eu member and the unconstrained one on the eu worker, the us member on the us worker.
BEGIN;
SELECT hatchet.register_workflow($${"name": "RegionBatch", "tasks": [{"readable_id": "t",
    "batch": {"batch_max_size": 3, "batch_max_interval_ms": 500}}]}$$) IS NOT NULL AS registered;
SELECT hatchet.register_worker('w-eu', ARRAY['regionbatch:t'], '{"default": 5}', '{"region": "eu"}',
                               worker_id => '00000000-0000-7000-8000-00000000c20e') IS NOT NULL AS eu;
SELECT hatchet.register_worker('w-us', ARRAY['regionbatch:t'], '{"default": 5}', '{"region": "us"}',
                               worker_id => '00000000-0000-7000-8000-00000000c20f') IS NOT NULL AS us;
SELECT hatchet.run_workflow('RegionBatch', jsonb_build_object('n', n),
                            desired_worker_labels => CASE WHEN r IS NOT NULL THEN
                                jsonb_build_object('region', jsonb_build_object('value', r, 'required', true)) END)
       IS NOT NULL AS triggered
FROM (VALUES (1, 'eu'), (2, 'us'), (3, NULL)) v(n, r);
-- Three members make a full batch, but no worker accepts all three: nothing is due until the interval.
SELECT * FROM pg_temp.batches();
SELECT pg_temp.age('regionbatch:t');
SELECT * FROM pg_temp.batches();
ROLLBACK;

-- 3. Label weights: a batch prefers the worker its members' labels weigh most, over one with more free slots, and
-- falls back to the other when that one is full.
BEGIN;
SELECT hatchet.register_workflow($${"name": "ZoneBatch", "tasks": [{"readable_id": "t",
    "worker_labels": {"zone": {"str_value": "eu", "weight": 50}},
    "batch": {"batch_max_size": 2, "batch_max_interval_ms": 30000}}]}$$) IS NOT NULL AS registered;
SELECT hatchet.register_worker('w-us', ARRAY['zonebatch:t'], '{"default": 10}', '{"zone": "us"}',
                               worker_id => '00000000-0000-7000-8000-00000000c30a') IS NOT NULL AS a;
SELECT hatchet.register_worker('w-eu', ARRAY['zonebatch:t'], '{"default": 1}', '{"zone": "eu"}',
                               worker_id => '00000000-0000-7000-8000-00000000c30e') IS NOT NULL AS e;
SELECT hatchet.run_workflow('ZoneBatch', jsonb_build_object('n', n)) IS NOT NULL AS triggered FROM generate_series(1, 4) n;
SELECT * FROM pg_temp.batches();
ROLLBACK;

-- 4. Stickiness: a sticky workflow's batch task triggered for a worker (a child spawned with sticky=True) carries it
-- as its desired worker. HARD: only that worker, never another one even with room; SOFT: that worker first, another
-- when it is full; a call for other workers only leaves a SOFT member to its own worker while that one has room.
BEGIN;
SELECT hatchet.register_workflow(format($${"name": "%sBatch", "sticky": "%s", "tasks": [{"readable_id": "t",
    "batch": {"batch_max_size": 2, "batch_max_interval_ms": 30000}}]}$$, s, upper(s))::jsonb) IS NOT NULL AS registered
FROM unnest(ARRAY['Hard', 'Soft']) s;
SELECT hatchet.register_worker('w-a', ARRAY['hardbatch:t', 'softbatch:t'], '{"default": 1}',
                               worker_id => '00000000-0000-7000-8000-00000000c40a') IS NOT NULL AS a;
SELECT hatchet.register_worker('w-b', ARRAY['hardbatch:t', 'softbatch:t'], '{"default": 10}',
                               worker_id => '00000000-0000-7000-8000-00000000c40b') IS NOT NULL AS b;
SELECT hatchet.run_workflow('HardBatch', jsonb_build_object('n', n),
                            desired_worker_id => '00000000-0000-7000-8000-00000000c40a') IS NOT NULL AS triggered
FROM generate_series(1, 2) n;
SELECT DISTINCT sticky, right(desired_worker_id::text, 1) AS desired FROM hatchet.tasks WHERE queue = 'hardbatch:t';
-- HARD with its worker paused: the full batch waits rather than going to b.
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000c40a', true);
SELECT * FROM pg_temp.batches();
SELECT count(*) AS hard_waits FROM hatchet.ready_queue WHERE queue = 'hardbatch:t';
SELECT hatchet.set_worker_paused('00000000-0000-7000-8000-00000000c40a', false);
SELECT * FROM pg_temp.batches();
-- SOFT: a is full now (its one slot holds the HARD batch), so the SOFT batch goes to b ...
SELECT hatchet.run_workflow('SoftBatch', jsonb_build_object('n', n),
                            desired_worker_id => '00000000-0000-7000-8000-00000000c40a') IS NOT NULL AS triggered
FROM generate_series(3, 4) n;
SELECT DISTINCT sticky, right(desired_worker_id::text, 1) AS desired FROM hatchet.tasks WHERE queue = 'softbatch:t';
SELECT * FROM pg_temp.batches();
-- ... and, once a has room again, the next SOFT batch goes to a although b has more free slots; a call for b only
-- leaves it for a.
SELECT hatchet.complete_many(ARRAY(SELECT task_id FROM hatchet.running WHERE queue = 'hardbatch:t'),
                             ARRAY(SELECT retry_count FROM hatchet.running WHERE queue = 'hardbatch:t')) AS completed;
SELECT hatchet.run_workflow('SoftBatch', jsonb_build_object('n', n),
                            desired_worker_id => '00000000-0000-7000-8000-00000000c40a') IS NOT NULL AS triggered
FROM generate_series(5, 6) n;
SELECT * FROM pg_temp.batches(ARRAY['00000000-0000-7000-8000-00000000c40b'::uuid]);
SELECT * FROM pg_temp.batches();
ROLLBACK;

-- 5. Rate limits: 2 units a minute, one per member, batches of 5. Five members: a batch of the first two goes, the
-- other three are parked until the window refills (they hold no slot and do not block the queue); in the next window
-- two more go and the last waits again. The limit is never exceeded.
BEGIN;
SELECT hatchet.put_rate_limit('batch-rl', 2, 'MINUTE');
SELECT hatchet.register_workflow($${"name": "LimitedBatch", "tasks": [{"readable_id": "t",
    "rate_limits": [{"key": "batch-rl", "units": 1}],
    "batch": {"batch_max_size": 5, "batch_max_interval_ms": 1000}}]}$$) IS NOT NULL AS registered;
SELECT hatchet.register_worker('w-rl', ARRAY['limitedbatch:t'], '{"default": 5}',
                               worker_id => '00000000-0000-7000-8000-00000000c50a') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('LimitedBatch', jsonb_build_object('n', n)) IS NOT NULL AS triggered
FROM generate_series(1, 5) n;
SELECT * FROM pg_temp.batches();
SELECT remaining FROM hatchet.rate_limits WHERE key = 'batch-rl';
SELECT d.reason, d.ready_at = (SELECT last_refill + window_size FROM hatchet.rate_limits WHERE key = 'batch-rl')
       AS at_refill, count(*)
FROM hatchet.delayed_queue d WHERE d.queue = 'limitedbatch:t' GROUP BY 1, 2;
SELECT count(*) AS nothing_ready FROM hatchet.ready_queue WHERE queue = 'limitedbatch:t';
SELECT * FROM pg_temp.batches();
-- The window passes: the parked members come back (the server's hatchet.assign promotes them), wait the flush
-- interval as a new group, and two of them go.
UPDATE hatchet.rate_limits SET last_refill = now() - interval '61 seconds' WHERE key = 'batch-rl';
UPDATE hatchet.delayed_queue SET ready_at = now() WHERE queue = 'limitedbatch:t';
SELECT count(*) AS assigned_singly FROM hatchet.assign();
SELECT count(*) AS ready_again FROM hatchet.ready_queue WHERE queue = 'limitedbatch:t';
SELECT * FROM pg_temp.batches();
SELECT pg_temp.age('limitedbatch:t');
SELECT * FROM pg_temp.batches();
SELECT remaining FROM hatchet.rate_limits WHERE key = 'batch-rl';
SELECT count(*) AS parked FROM hatchet.delayed_queue WHERE queue = 'limitedbatch:t' AND reason = 'rate_limit';
SELECT count(*) AS members_running, count(DISTINCT batch_id) AS batches FROM hatchet.running
WHERE queue = 'limitedbatch:t';
ROLLBACK;
