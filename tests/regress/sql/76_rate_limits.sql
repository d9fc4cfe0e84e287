-- Rate limits: fixed windows that refill to full, units taken at dispatch, no head-of-line blocking.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
SELECT hatchet.put_rate_limit('api', 2, 'MINUTE');
SELECT key, limit_value, remaining, window_size FROM hatchet.rate_limits WHERE key = 'api';
-- Three limited tasks, then one unlimited: the third limited one does not block the unlimited one.
SELECT count(*) FROM unnest(hatchet.enqueue_many('rl', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[],
                                                 rate_limits => '[{"key": "api"}]')) AS x;
SELECT hatchet.enqueue('rl', '{"n": "free"}') IS NOT NULL AS queued;
SELECT input FROM hatchet.dequeue('rl', n => 10);
SELECT remaining FROM hatchet.rate_limits WHERE key = 'api';
-- The limited one waits for its window, still QUEUED; it runs as soon as the window refills.
SELECT reason, ready_at = (SELECT last_refill + window_size FROM hatchet.rate_limits WHERE key = 'api') AS at_refill
FROM hatchet.delayed_queue WHERE queue = 'rl';
SELECT count(*) AS too_early FROM hatchet.dequeue('rl', n => 10);
UPDATE hatchet.rate_limits SET last_refill = now() - interval '61 seconds' WHERE key = 'api';
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE queue = 'rl';
SELECT input FROM hatchet.dequeue('rl', n => 10);
-- Refilled to full, then one unit taken; units are not returned on completion.
SELECT remaining FROM hatchet.rate_limits WHERE key = 'api';
SELECT count(*) FROM (SELECT hatchet.complete(task_id, 0) FROM hatchet.running WHERE queue = 'rl') c;
SELECT remaining FROM hatchet.rate_limits WHERE key = 'api';

-- Several keys and units: all or nothing.
SELECT hatchet.put_rate_limit('tokens', 10, 'SECOND');
SELECT hatchet.enqueue('rl2', rate_limits => '[{"key": "api", "units": 1}, {"key": "tokens", "units": 7}]') AS m \gset
SELECT count(*) FROM hatchet.dequeue('rl2');
SELECT key, remaining FROM hatchet.rate_limits WHERE key IN ('api', 'tokens') ORDER BY key;
SELECT hatchet.enqueue('rl2', rate_limits => '[{"key": "api", "units": 1}, {"key": "tokens", "units": 7}]') AS m2 \gset
SELECT count(*) AS blocked_by_tokens FROM hatchet.dequeue('rl2');
SELECT key, remaining FROM hatchet.rate_limits WHERE key IN ('api', 'tokens') ORDER BY key;

-- A request that can never be served fails the task with the reason instead of waiting forever.
SELECT hatchet.enqueue('rl3', rate_limits => '[{"key": "tokens", "units": 11}]') AS big \gset
SELECT hatchet.enqueue('rl3', rate_limits => '[{"key": "nope"}]') AS unknown \gset
SELECT count(*) FROM hatchet.dequeue('rl3', n => 5);
SELECT hatchet.task_status(:'big') AS big, hatchet.task_status(:'unknown') AS unknown;
SELECT reason FROM hatchet.task_events(:'big') WHERE event_type = 'FAILED'
UNION ALL SELECT reason FROM hatchet.task_events(:'unknown') WHERE event_type = 'FAILED';

-- Lowering a limit clamps what is left in the window.
SELECT hatchet.put_rate_limit('tokens', 2, 'SECOND');
SELECT limit_value, remaining FROM hatchet.rate_limits WHERE key = 'tokens';
ROLLBACK;

SELECT pg_temp.err($$SELECT hatchet.put_rate_limit('k', 0)$$) AS zero_limit;
SELECT pg_temp.err($$SELECT hatchet.put_rate_limit('k', 5, 'FORTNIGHT')$$) AS bad_duration;
SELECT pg_temp.err($$SELECT hatchet.put_rate_limit('', 5)$$) AS empty_key;
SELECT pg_temp.err($$SELECT hatchet.enqueue('x', rate_limits => '{"key": "api"}')$$) AS not_an_array;
SELECT pg_temp.err($$SELECT hatchet.enqueue('x', rate_limits => '[{"key": "api", "units": 0}]')$$) AS zero_units;
SELECT count(*) AS nothing_written FROM hatchet.rate_limits WHERE key = 'k';
