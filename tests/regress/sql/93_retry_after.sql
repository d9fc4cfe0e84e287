-- Retry-after (issue 19): fail(..., retry_after => d) retries after d instead of the task's backoff, and the retry
-- counts against the task's retries like any other; a negative delay is refused and changes nothing.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
-- A task with backoff 10^n s: the delay it asks for (3 s) wins over the 10 s backoff.
SELECT hatchet.enqueue('ra', retries => 2, backoff_factor => 10, backoff_max_seconds => 50) AS a \gset
SELECT retry_count FROM hatchet.dequeue('ra');
-- Negative delay: 22023, and the attempt is still running.
SELECT pg_temp.err(format('SELECT hatchet.fail(%L, 0, %L, retry_after => %L)', :'a', 'x', '-1 second'))
    AS negative_delay;
SELECT count(*) AS still_running FROM hatchet.running WHERE task_id = :'a';
SELECT hatchet.fail(:'a', 0, 'rate limited', retry_after => '3 seconds');
SELECT retry_count, app_retry_count, priority, reason,
       ready_at - (SELECT max(created_at) FROM hatchet.task_events WHERE task_id = :'a' AND event_type = 'RETRYING')
       = interval '3 seconds' AS three_seconds
FROM hatchet.delayed_queue WHERE task_id = :'a';
SELECT count(*) AS too_early FROM hatchet.dequeue('ra');
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE task_id = :'a';
SELECT retry_count FROM hatchet.dequeue('ra');
-- Without retry_after the next retry uses the backoff again (10^2 capped at 50 s).
SELECT hatchet.fail(:'a', 1, 'plain failure');
SELECT retry_count,
       ready_at - (SELECT max(created_at) FROM hatchet.task_events WHERE task_id = :'a' AND event_type = 'RETRYING')
       = interval '50 seconds' AS backoff_again
FROM hatchet.delayed_queue WHERE task_id = :'a';
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE task_id = :'a';
SELECT retry_count FROM hatchet.dequeue('ra');
-- The retries are used up: asking for a retry-after now fails the task for good.
SELECT hatchet.fail(:'a', 2, 'rate limited again', retry_after => '1 second');
SELECT hatchet.task_status(:'a');
SELECT count(*) AS not_delayed FROM hatchet.delayed_queue WHERE task_id = :'a';
SELECT event_type, retry_count, reason FROM hatchet.task_events(:'a');

-- A task without backoff: retry_after delays a retry that would otherwise be queued at once.
SELECT hatchet.enqueue('ra', retries => 1) AS b \gset
SELECT retry_count FROM hatchet.dequeue('ra');
SELECT hatchet.fail(:'b', 0, 'later please', retry_after => '2 minutes');
SELECT count(*) AS not_ready_now FROM hatchet.ready_queue WHERE task_id = :'b';
SELECT retry_count, app_retry_count,
       ready_at - (SELECT max(created_at) FROM hatchet.task_events WHERE task_id = :'b' AND event_type = 'RETRYING')
       = interval '2 minutes' AS two_minutes
FROM hatchet.delayed_queue WHERE task_id = :'b';
-- Once the delay is over the retry runs; it was the last one, so even a zero delay cannot retry again.
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE task_id = :'b';
SELECT retry_count FROM hatchet.dequeue('ra');
SELECT hatchet.fail(:'b', 1, 'no retries left', retry_after => '0');
SELECT hatchet.task_status(:'b');

-- Not retryable wins over retry_after.
SELECT hatchet.enqueue('ra', retries => 5) AS c \gset
SELECT retry_count FROM hatchet.dequeue('ra');
SELECT hatchet.fail(:'c', 0, 'fatal', retryable => false, retry_after => '1 second');
SELECT hatchet.task_status(:'c');
ROLLBACK;
