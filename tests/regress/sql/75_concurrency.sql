-- Concurrency keys: GROUP_ROUND_ROBIN caps and fair interleaving, CANCEL_NEWEST, CANCEL_IN_PROGRESS, and that every
-- way a task ends gives its slot back.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;
-- The invariant every test here ends with: each group's running count equals the slots held, within max_runs, and
-- every slot belongs to a task that is queued or running.
CREATE FUNCTION pg_temp.invariants() RETURNS TABLE (groups_consistent boolean, no_leaked_slots boolean)
LANGUAGE sql AS $$
    SELECT
        NOT EXISTS (SELECT 1 FROM hatchet.concurrency_groups g
                    WHERE g.running <> (SELECT count(*) FROM hatchet.concurrency_slots s
                                        WHERE s.tenant_id = g.tenant_id AND s.scope = g.scope AND s.key = g.key)
                       OR g.running > g.max_runs),
        NOT EXISTS (SELECT 1 FROM hatchet.concurrency_slots s
                    WHERE NOT EXISTS (SELECT 1 FROM hatchet.ready_queue r WHERE r.task_id = s.task_id)
                      AND NOT EXISTS (SELECT 1 FROM hatchet.running r WHERE r.task_id = s.task_id)
                      AND NOT EXISTS (SELECT 1 FROM hatchet.delayed_queue r WHERE r.task_id = s.task_id))
$$;

BEGIN;
-- GROUP_ROUND_ROBIN, max_runs 2: two admitted, three wait; completing one admits the next, in arrival order.
SELECT count(*) FROM unnest(hatchet.enqueue_many('conc', ARRAY(SELECT jsonb_build_object('n', i) FROM generate_series(1, 5) i),
                                                 concurrency_key => 'user-1', max_runs => 2)) AS x;
SELECT (SELECT count(*) FROM hatchet.ready_queue WHERE queue = 'conc') AS ready,
       (SELECT count(*) FROM hatchet.concurrency_queue WHERE queue = 'conc') AS waiting,
       (SELECT running FROM hatchet.concurrency_groups WHERE key = 'user-1') AS running;
SELECT input FROM hatchet.dequeue('conc', n => 10);
SELECT count(*) AS nothing_more FROM hatchet.dequeue('conc', n => 10);
SELECT hatchet.complete(task_id, 0) FROM hatchet.running WHERE queue = 'conc'
  AND task_id = (SELECT min(task_id::text)::uuid FROM hatchet.running WHERE queue = 'conc');
SELECT input FROM hatchet.dequeue('conc', n => 10);
-- A waiting task is QUEUED and can be cancelled; a running one gives its slot back when cancelled.
SELECT hatchet.task_status(task_id) FROM hatchet.concurrency_queue WHERE queue = 'conc' ORDER BY id LIMIT 1;
SELECT hatchet.cancel(task_id) FROM hatchet.concurrency_queue WHERE queue = 'conc' ORDER BY id LIMIT 1;
SELECT hatchet.cancel(task_id) FROM hatchet.running WHERE queue = 'conc' ORDER BY assigned_at, task_id LIMIT 1;
SELECT input FROM hatchet.dequeue('conc', n => 10);
SELECT * FROM pg_temp.invariants();
ROLLBACK;

BEGIN;
-- Fair interleaving: key A has 200 queued, key B 10 (room for all): B is not stuck behind A.
SELECT count(*) FROM unnest(hatchet.enqueue_many('fair', array_fill('{"k": "A"}'::jsonb, ARRAY[200]),
                                                 concurrency_key => 'A', max_runs => 1000)) AS a;
SELECT count(*) FROM unnest(hatchet.enqueue_many('fair', array_fill('{"k": "B"}'::jsonb, ARRAY[10]),
                                                 concurrency_key => 'B', max_runs => 1000)) AS b;
WITH d AS (SELECT input ->> 'k' AS k, row_number() OVER () AS pos FROM hatchet.dequeue('fair', n => 20))
SELECT k, count(*) AS dispatched, max(pos) AS last_position FROM d GROUP BY k ORDER BY k;
ROLLBACK;

BEGIN;
-- CANCEL_NEWEST: an arrival beyond max_runs is cancelled at once, with the reason.
SELECT hatchet.enqueue('cn', '{"n": 1}', concurrency_key => 'k', max_runs => 1, strategy => 'CANCEL_NEWEST') AS first \gset
SELECT hatchet.enqueue('cn', '{"n": 2}', concurrency_key => 'k', max_runs => 1, strategy => 'CANCEL_NEWEST') AS second \gset
SELECT hatchet.task_status(:'first') AS first, hatchet.task_status(:'second') AS second;
SELECT reason FROM hatchet.task_events(:'second') WHERE event_type = 'CANCELLED';
-- Once the first finishes, a new arrival is admitted.
SELECT count(*) FROM hatchet.dequeue('cn');
SELECT hatchet.complete(:'first', 0);
SELECT hatchet.enqueue('cn', '{"n": 3}', concurrency_key => 'k', max_runs => 1, strategy => 'CANCEL_NEWEST') AS third \gset
SELECT hatchet.task_status(:'third') AS third;
SELECT * FROM pg_temp.invariants();
ROLLBACK;

BEGIN;
-- CANCEL_IN_PROGRESS: a new arrival cancels the oldest run of its key, even a running one (whose result is then
-- rejected, and a cancel notification names it for the server).
SELECT hatchet.enqueue('cip', '{"n": 1}', concurrency_key => 'k', max_runs => 1, strategy => 'CANCEL_IN_PROGRESS') AS old \gset
SELECT count(*) FROM hatchet.dequeue('cip');
SELECT hatchet.enqueue('cip', '{"n": 2}', concurrency_key => 'k', max_runs => 1, strategy => 'CANCEL_IN_PROGRESS') AS new \gset
SELECT hatchet.task_status(:'old') AS old, hatchet.task_status(:'new') AS new;
SELECT reason FROM hatchet.task_events(:'old') WHERE event_type = 'CANCELLED';
SELECT pg_temp.err(format('SELECT hatchet.complete(%L, 0)', :'old')) AS late_result;
SELECT * FROM pg_temp.invariants();
ROLLBACK;

BEGIN;
-- Every ending gives the slot back: failure, timeout, retry with backoff (re-admitted when due), schedule timeout.
SELECT hatchet.enqueue('rel', '{"how": "fail"}', concurrency_key => 'r', max_runs => 1) AS f \gset
SELECT count(*) FROM hatchet.dequeue('rel');
SELECT hatchet.fail(:'f', 0, 'boom');
SELECT running FROM hatchet.concurrency_groups WHERE key = 'r';
SELECT hatchet.enqueue('rel', '{"how": "timeout"}', concurrency_key => 'r', max_runs => 1) AS t \gset
SELECT count(*) FROM hatchet.dequeue('rel');
UPDATE hatchet.running SET assigned_at = now() - interval '2 hours', timeout_at = now() - interval '1 hour' WHERE task_id = :'t';
SELECT hatchet._reap_timeouts(hatchet.default_tenant(), clock_timestamp(), 10) AS timed_out;
SELECT running FROM hatchet.concurrency_groups WHERE key = 'r';
SELECT hatchet.enqueue('rel', '{"how": "backoff"}', concurrency_key => 'r', max_runs => 1, retries => 1,
                       backoff_factor => 60) AS b \gset
SELECT hatchet.enqueue('rel', '{"how": "waiter"}', concurrency_key => 'r', max_runs => 1) AS w \gset
SELECT count(*) FROM hatchet.dequeue('rel');
SELECT hatchet.fail(:'b', 0, 'transient');
-- The backoff gave the slot to the waiter; the retry waits for its backoff, then for a slot.
SELECT hatchet.task_status(:'w') AS waiter, (SELECT reason FROM hatchet.delayed_queue WHERE task_id = :'b') AS retry;
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE task_id = :'b';
SELECT hatchet._promote_due(hatchet.default_tenant(), NULL, clock_timestamp(), 10) AS promoted;
SELECT (SELECT count(*) FROM hatchet.concurrency_queue WHERE task_id = :'b') AS retry_waits_for_slot;
UPDATE hatchet.concurrency_queue SET schedule_timeout_at = now() - interval '1 second' WHERE task_id = :'b';
SELECT hatchet._expire_queued(hatchet.default_tenant(), clock_timestamp(), 10) AS expired;
SELECT hatchet.task_status(:'b');
SELECT * FROM pg_temp.invariants();
ROLLBACK;

-- Bad options: nothing written.
SELECT pg_temp.err($$SELECT hatchet.enqueue('x', concurrency_key => 'k', strategy => 'DROP_OLDEST')$$) AS bad_strategy;
SELECT pg_temp.err($$SELECT hatchet.enqueue('x', concurrency_key => 'k', max_runs => 0)$$) AS zero_max_runs;
SELECT pg_temp.err($$SELECT hatchet.enqueue('x', max_runs => 3)$$) AS max_runs_without_key;
SELECT count(*) AS nothing_written FROM hatchet.tasks WHERE queue = 'x';
