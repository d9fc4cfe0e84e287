-- dequeue: order (priority, FIFO, retries first), run_at, limits, and that it reads an index in queue order.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
SELECT hatchet.enqueue('orders', '{"n": 1}', priority => 1) IS NOT NULL AS queued;
SELECT hatchet.enqueue('orders', '{"n": 2}', priority => 3) IS NOT NULL AS queued;
SELECT hatchet.enqueue('orders', '{"n": 3}', priority => 2) IS NOT NULL AS queued;
SELECT hatchet.enqueue('orders', '{"n": 4}', priority => 3) IS NOT NULL AS queued;
SELECT hatchet.enqueue('orders', '{"n": 5}', priority => 1) IS NOT NULL AS queued;
SELECT hatchet.enqueue('orders', '{"n": 6}', run_at => now() + interval '1 day') IS NOT NULL AS queued;
SELECT hatchet.enqueue('other', '{"n": 7}') IS NOT NULL AS queued;
-- Priority 3 before 2 before 1, FIFO within a priority, nothing from another queue or not yet due.
SELECT input, retry_count, priority, timeout_at > now() AS has_timeout FROM hatchet.dequeue('orders', 'w1', 2);
SELECT input, priority FROM hatchet.dequeue('orders', 'w1', 10);
SELECT count(*) AS nothing_left FROM hatchet.dequeue('orders', 'w1', 10);
SELECT worker_name, count(*) FROM hatchet.running WHERE queue = 'orders' GROUP BY worker_name;
ROLLBACK;

-- A retry goes ahead of new work of any priority.
BEGIN;
SELECT hatchet.enqueue('retryq', '{"n": "first"}', retries => 1) AS r \gset
SELECT input FROM hatchet.dequeue('retryq');
SELECT hatchet.enqueue('retryq', '{"n": "urgent"}', priority => 3) IS NOT NULL AS queued;
SELECT hatchet.fail(:'r', 0, 'transient');
SELECT input, retry_count, priority FROM hatchet.dequeue('retryq', n => 10);
ROLLBACK;

-- Each priority is read on from where this session's previous claim of it stopped (claim bounds): a retry or work of
-- a higher priority that arrives after a claim still goes first, and the rest follows in order.
BEGIN;
SET LOCAL hatchet.claim_rescan_interval = '1min';
SELECT count(*) FROM unnest(hatchet.enqueue_many('boundq', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[],
                                                 retries => 1)) AS x;
SELECT task_id AS first FROM hatchet.dequeue('boundq') \gset
SELECT hatchet.enqueue('boundq', '{"n": "urgent"}', priority => 3) IS NOT NULL AS queued;
SELECT hatchet.fail(:'first', 0, 'transient');
SELECT input, retry_count, priority FROM hatchet.dequeue('boundq', n => 2);
SELECT input, retry_count, priority FROM hatchet.dequeue('boundq', n => 1);
SELECT input, retry_count, priority FROM hatchet.dequeue('boundq', n => 10);
ROLLBACK;
SELECT pg_temp.err($$SET hatchet.claim_rescan_interval = '-1ms'$$);

-- Bad arguments.
SELECT pg_temp.err($$SELECT * FROM hatchet.dequeue(NULL)$$);
SELECT pg_temp.err($$SELECT * FROM hatchet.dequeue('q', n => 0)$$);
SELECT pg_temp.err($$SELECT * FROM hatchet.dequeue('q', n => 10001)$$);

-- The claim reads the dispatch index in queue order: no sort of the backlog, no sequential scan, even with many rows.
BEGIN;
SELECT count(*) FROM unnest(hatchet.enqueue_many('big', array_fill('{}'::jsonb, ARRAY[5000]))) AS x;
ANALYZE hatchet.ready_queue;
EXPLAIN (COSTS OFF)
SELECT c.ctid FROM hatchet.ready_queue c
WHERE c.tenant_id = hatchet.default_tenant() AND c.queue = 'big'
ORDER BY c.priority DESC, c.fair_rank, c.id
LIMIT 10
FOR UPDATE SKIP LOCKED;
ROLLBACK;
