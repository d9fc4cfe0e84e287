-- hatchet.pause_rate_limit (PauseRateLimit): a paused limit lets no task take units until the pause ends or it is
-- unpaused; hatchet.list_rate_limits shows the pause.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
SELECT hatchet.put_rate_limit('api', 5, 'MINUTE');
SELECT hatchet.put_rate_limit('other', 5, 'MINUTE');
SELECT hatchet.pause_rate_limit('api', now() + interval '1 hour') = now() + interval '1 hour' AS paused_until_returned;
SELECT key, limit_value, remaining, "window", paused_until = now() + interval '1 hour' AS paused
FROM hatchet.list_rate_limits() ORDER BY key;
-- Limited tasks wait (parked until the pause ends, still QUEUED, no units taken); others run.
SELECT hatchet.enqueue('rl', '{"n": 1}', rate_limits => '[{"key": "api"}]') AS t1 \gset
SELECT hatchet.enqueue('rl', '{"n": 2}', rate_limits => '[{"key": "other"}]') AS t2 \gset
SELECT input FROM hatchet.dequeue('rl', n => 10);
SELECT hatchet.task_status(:'t1') AS paused_task;
SELECT reason, ready_at = now() + interval '1 hour' AS until_pause_ends FROM hatchet.delayed_queue WHERE task_id = :'t1';
SELECT key, remaining FROM hatchet.list_rate_limits() ORDER BY key;
-- Unpausing (a time in the past, or NULL) brings the parked task back at once.
SELECT hatchet.pause_rate_limit('api', now() - interval '1 second') IS NULL AS unpaused;
SELECT ready_at <= clock_timestamp() AS due_now FROM hatchet.delayed_queue WHERE task_id = :'t1';
SELECT input FROM hatchet.dequeue('rl', n => 10);
SELECT key, remaining, paused_until FROM hatchet.list_rate_limits('ap');
-- A pause that has already ended lets tasks through; pausing again holds them again.
SELECT hatchet.pause_rate_limit('api', NULL) IS NULL AS unpaused_again;
SELECT hatchet.enqueue('rl', '{"n": 3}', rate_limits => '[{"key": "api"}]') IS NOT NULL AS queued;
SELECT input FROM hatchet.dequeue('rl', n => 10);
SELECT hatchet.pause_rate_limit('api', now() + interval '10 minutes') IS NOT NULL AS paused;
SELECT hatchet.enqueue('rl', '{"n": 4}', rate_limits => '[{"key": "api"}]') IS NOT NULL AS queued;
SELECT count(*) AS held FROM hatchet.dequeue('rl', n => 10);
-- Another tenant's list does not show this tenant's limits, nor can it pause them.
INSERT INTO hatchet.tenants (tenant_id, name) VALUES ('00000000-0000-7000-8000-00000000aaaa', 'other');
SELECT count(*) AS other_tenant_sees FROM hatchet.list_rate_limits(tenant_id => '00000000-0000-7000-8000-00000000aaaa');
SELECT pg_temp.err($$SELECT hatchet.pause_rate_limit('api', now() + interval '1 day',
                                                     '00000000-0000-7000-8000-00000000aaaa')$$) AS other_tenant_pause;

-- Bad input: an unknown key (42704), a NULL key (22004); nothing changes.
SELECT pg_temp.err($$SELECT hatchet.pause_rate_limit('nope', now() + interval '1 hour')$$) AS unknown_key;
SELECT pg_temp.err($$SELECT hatchet.pause_rate_limit(NULL, now() + interval '1 hour')$$) AS null_key;
SELECT count(*) AS nothing_created FROM hatchet.rate_limits WHERE key = 'nope';
SELECT key, paused_until > now() AS paused FROM hatchet.rate_limits ORDER BY key;
ROLLBACK;
