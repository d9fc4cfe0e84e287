-- Batch tasks (issue 19): members grouped by their batch key (CEL at enqueue) up to the batch size, flushed on size
-- or after the interval, one slot per batch, each member finishing, failing and retrying on its own; a key that does
-- not evaluate to a string fails only that task; bad definitions and arguments are refused with a SQLSTATE.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
SELECT hatchet.register_workflow($${"name": "Batcher", "tasks": [{"readable_id": "up", "retries": 1,
    "batch": {"batch_max_size": 3, "batch_max_interval_ms": 500, "batch_group_key": "input.group"}}]}$$) IS NOT NULL
    AS registered;
SELECT batch FROM hatchet.task_definitions WHERE action = 'batcher:up';
SELECT hatchet.register_worker('w-batch', ARRAY['batcher:up'], '{"default": 2}',
                               worker_id => '00000000-0000-7000-8000-0000000000b1') IS NOT NULL AS registered;
-- Four members of group a, one of b, and one whose key is a number: that one fails at once, the others queue.
SELECT hatchet.run_workflow('Batcher', jsonb_build_object('group', g, 'n', n)) IS NOT NULL AS triggered
FROM (VALUES ('a', 1), ('a', 2), ('b', 3), ('a', 4), ('a', 5)) v(g, n);
SELECT hatchet.run_workflow('Batcher', '{"group": 7, "n": 6}') AS bad \gset
SELECT hatchet.run_status(:'bad');
SELECT e.event_type, e.reason FROM hatchet.tasks t CROSS JOIN LATERAL hatchet.task_events(t.id) e WHERE t.run_id = :'bad';
SELECT coalesce(t.batch_key, '<null>') AS key, count(*) FROM hatchet.ready_queue r
JOIN hatchet.tasks t ON t.id = r.task_id WHERE r.queue = 'batcher:up' GROUP BY 1 ORDER BY 1;
-- hatchet.assign leaves batch tasks alone.
SELECT count(*) AS assigned_singly FROM hatchet.assign();
-- Flush on size: the first three of group a, in order, as one batch holding one slot; a's fourth and b's only member
-- wait for more members or for the interval.
SELECT batch_key, batch_size, batch_index, trigger_reason, input -> 'input' ->> 'n' AS n, right(worker_id::text, 2) AS w
FROM hatchet.assign_batches() ORDER BY batch_index;
SELECT used FROM hatchet.worker_slots WHERE worker_id = '00000000-0000-7000-8000-0000000000b1';
SELECT size, remaining, batch_key, reason FROM hatchet.batches;
SELECT count(*) AS running_without_slot_units FROM hatchet.running WHERE batch_id IS NOT NULL AND slot_units = 0;
SELECT count(*) AS nothing_due FROM hatchet.assign_batches();
-- Flush on interval: once they have waited 500 ms both groups are due, but one slot is left: one batch goes (b's,
-- queued before a's fifth), a's stays ready.
UPDATE hatchet.ready_queue SET schedule_timeout_at = schedule_timeout_at - interval '600 milliseconds'
WHERE queue = 'batcher:up';
SELECT batch_key, batch_size, trigger_reason, input -> 'input' ->> 'n' AS n FROM hatchet.assign_batches();
SELECT used FROM hatchet.worker_slots WHERE worker_id = '00000000-0000-7000-8000-0000000000b1';
SELECT count(*) AS still_ready FROM hatchet.ready_queue WHERE queue = 'batcher:up';

-- Members finish on their own. Completing two of the first batch keeps its slot; failing the third (it has a retry)
-- ends the batch: its slot is freed and the failed member is queued again, for a later batch.
SELECT b.id AS first_batch FROM hatchet.batches b WHERE b.size = 3 \gset
SELECT hatchet.complete_many(ARRAY(SELECT r.task_id FROM hatchet.running r JOIN hatchet.tasks t ON t.id = r.task_id
                                   WHERE r.batch_id = :'first_batch' AND t.input -> 'input' ->> 'n' IN ('1', '2')),
                             ARRAY[0, 0]) AS completed;
SELECT remaining FROM hatchet.batches WHERE id = :'first_batch';
SELECT used FROM hatchet.worker_slots WHERE worker_id = '00000000-0000-7000-8000-0000000000b1';
SELECT task_id AS third FROM hatchet.running WHERE batch_id = :'first_batch' \gset
SELECT task_id = :'third' AS is_third, retry_count FROM hatchet.batch_attempts(:'first_batch',
    ARRAY(SELECT id FROM hatchet.tasks WHERE queue = 'batcher:up'));
SELECT hatchet.fail(:'third', 0, 'boom');
SELECT count(*) AS first_batch_gone FROM hatchet.batches WHERE id = :'first_batch';
SELECT used FROM hatchet.worker_slots WHERE worker_id = '00000000-0000-7000-8000-0000000000b1';
SELECT retry_count, priority FROM hatchet.ready_queue WHERE task_id = :'third';
-- A stale batch event finds no member (already finished, or running again elsewhere).
SELECT count(*) AS stale FROM hatchet.batch_attempts(:'first_batch', ARRAY[:'third'::uuid]);
-- The retried member of group a joins a's next batch, not b's: two batches (the interval is counted from when it
-- was queued again, so it is aged too).
UPDATE hatchet.ready_queue SET schedule_timeout_at = schedule_timeout_at - interval '600 milliseconds'
WHERE task_id = :'third';
SELECT batch_key, batch_size, retry_count, input -> 'input' ->> 'n' AS n FROM hatchet.assign_batches()
ORDER BY batch_key, batch_index;
SELECT used FROM hatchet.worker_slots WHERE worker_id = '00000000-0000-7000-8000-0000000000b1';
-- Refreshing the timeout of one member (the SDK refreshes a batch through its first member) extends the batch's.
SELECT b.id AS a_batch FROM hatchet.batches b WHERE b.batch_key = 'a' \gset
SELECT hatchet.refresh_timeout(:'third', NULL, '10m') IS NOT NULL AS refreshed;
SELECT count(*) AS members, bool_and(timeout_at - assigned_at = interval '11 minutes') AS both_extended
FROM hatchet.running WHERE batch_id = :'a_batch';
-- Cancelling a member of a running batch: that member ends, the batch (one member) ends with it.
SELECT b.id AS b_batch FROM hatchet.batches b WHERE b.batch_key = 'b' \gset
SELECT hatchet.cancel((SELECT task_id FROM hatchet.running WHERE batch_id = :'b_batch'));
SELECT count(*) AS b_batch_gone FROM hatchet.batches WHERE id = :'b_batch';
SELECT used FROM hatchet.worker_slots WHERE worker_id = '00000000-0000-7000-8000-0000000000b1';
-- Every member finished once: runs completed, failed (the bad key) or cancelled, none lost, none twice.
SELECT hatchet.complete_many(ARRAY(SELECT task_id FROM hatchet.running WHERE batch_id IS NOT NULL),
                             ARRAY(SELECT retry_count FROM hatchet.running WHERE batch_id IS NOT NULL)) AS completed;
SELECT count(*) AS batches_left FROM hatchet.batches;
SELECT used FROM hatchet.worker_slots WHERE worker_id = '00000000-0000-7000-8000-0000000000b1';
SELECT hatchet.task_status(t.id) AS status, count(*) FROM hatchet.tasks t WHERE t.queue = 'batcher:up'
GROUP BY 1 ORDER BY 1;
SELECT event_type, retry_count FROM hatchet.task_events(:'third') ORDER BY created_at, retry_count;
ROLLBACK;

BEGIN;
-- batch_group_max_runs: at most that many batches of one key run at once; other keys are not held back.
SELECT hatchet.register_workflow($${"name": "OneAtATime", "tasks": [{"readable_id": "t",
    "batch": {"batch_max_size": 1, "batch_group_key": "input.k", "batch_group_max_runs": 1}}]}$$) IS NOT NULL
    AS registered;
SELECT hatchet.register_worker('w-one', ARRAY['oneatatime:t'], '{"default": 5}',
                               worker_id => '00000000-0000-7000-8000-0000000000b2') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('OneAtATime', jsonb_build_object('k', k, 'n', n)) IS NOT NULL AS triggered
FROM (VALUES ('x', 1), ('x', 2), ('y', 3)) v(k, n);
SELECT batch_key, batch_size, trigger_reason, input -> 'input' ->> 'n' AS n FROM hatchet.assign_batches()
ORDER BY batch_key;
SELECT count(*) AS x_waits FROM hatchet.assign_batches();
SELECT hatchet.complete_many(ARRAY(SELECT task_id FROM hatchet.running r JOIN hatchet.batches b ON b.id = r.batch_id
                                   WHERE b.batch_key = 'x'), ARRAY[0]) AS completed;
SELECT batch_key, input -> 'input' ->> 'n' AS n FROM hatchet.assign_batches();
-- A dead worker's batch: its members are retried and the batch is gone (the slot with the worker).
UPDATE hatchet.workers SET last_heartbeat_at = now() - interval '1 hour' WHERE id = '00000000-0000-7000-8000-0000000000b2';
SELECT hatchet._reap_dead_workers(hatchet.default_tenant(), clock_timestamp()) >= 0 AS reaped;
SELECT count(*) AS batches_left FROM hatchet.batches;
SELECT count(*) AS requeued FROM hatchet.ready_queue WHERE queue = 'oneatatime:t';
ROLLBACK;

BEGIN;
-- Flush on bytes: a batch is one gRPC message (the SDKs take up to 4 MiB), so members of 1.5 MB go two at a time
-- although the batch size is 10; the third waits for more or for the interval.
SELECT hatchet.register_workflow($${"name": "Big", "tasks": [{"readable_id": "t", "batch": {"batch_max_size": 10}}]}$$)
    IS NOT NULL AS registered;
SELECT hatchet.register_worker('w-big', ARRAY['big:t'], '{"default": 5}',
                               worker_id => '00000000-0000-7000-8000-0000000000b3') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('Big', jsonb_build_object('n', n, 'data', repeat('x', 1500000))) IS NOT NULL AS triggered
FROM generate_series(1, 3) n;
SELECT batch_size, batch_index, trigger_reason, input -> 'input' ->> 'n' AS n FROM hatchet.assign_batches();
SELECT count(*) AS third_waits FROM hatchet.ready_queue WHERE queue = 'big:t';
ROLLBACK;

-- Bad definitions and arguments: refused with a SQLSTATE, nothing registered.
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "BadBatch", "tasks": [{"readable_id": "t",
    "batch": {"batch_max_size": 0}}]}')$$) AS zero_size;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "BadBatch", "tasks": [{"readable_id": "t",
    "batch": {"batch_max_size": 2, "batch_max_interval_ms": -5}}]}')$$) AS negative_interval;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "BadBatch", "tasks": [{"readable_id": "t",
    "batch": {"batch_max_size": 2, "batch_group_max_runs": 0}}]}')$$) AS zero_max_runs;
SELECT pg_temp.err($$SELECT hatchet.register_workflow('{"name": "BadBatch", "tasks": [{"readable_id": "t",
    "batch": "yes"}]}')$$) AS not_an_object;
SELECT count(*) AS none_registered FROM hatchet.workflows WHERE name = 'BadBatch';
SELECT pg_temp.err($$SELECT * FROM hatchet.assign_batches(max_batches => 0)$$) AS zero_batches;
SELECT pg_temp.err($$SELECT * FROM hatchet.batch_attempts(NULL, '{}')$$) AS null_batch;
