-- complete / fail / retries with backoff / refresh_timeout / cancel / status and timeline, and stale attempts.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
-- complete: the output is stored, the task is COMPLETED, and the attempt cannot report twice.
SELECT hatchet.enqueue('life', '{"x": 1}') AS c \gset
SELECT pg_temp.err(format('SELECT hatchet.complete(%L, 0)', :'c')) AS complete_while_queued;
SELECT task_id = :'c' AS claimed FROM hatchet.dequeue('life', 'worker-a');
SELECT hatchet.task_status(:'c');
SELECT pg_temp.err(format('SELECT hatchet.complete(%L, 1)', :'c')) AS wrong_attempt;
SELECT hatchet.complete(:'c', 0, '{"y": 2}');
SELECT hatchet.task_status(:'c');
SELECT kind, data FROM hatchet.payloads WHERE task_id = :'c';
SELECT pg_temp.err(format('SELECT hatchet.complete(%L, 0)', :'c')) AS completed_twice;
SELECT pg_temp.err(format('SELECT hatchet.fail(%L, 0, %L)', :'c', 'late')) AS fail_after_complete;
SELECT event_type, retry_count, worker FROM hatchet.task_events(:'c');

-- fail with retries and backoff: delay = min(backoff_max_seconds, factor ^ attempt), retries go to priority 4.
SELECT hatchet.enqueue('life', retries => 3, backoff_factor => 10, backoff_max_seconds => 50) AS f \gset
SELECT retry_count FROM hatchet.dequeue('life');
SELECT hatchet.fail(:'f', 0, 'first failure');
-- (measured from the failure's own timestamp, so a slow machine cannot change the answer)
SELECT retry_count, priority, reason,
       ready_at - (SELECT max(created_at) FROM hatchet.task_events WHERE task_id = :'f' AND event_type = 'RETRYING')
       = interval '10 seconds' AS ten_seconds
FROM hatchet.delayed_queue WHERE task_id = :'f';
SELECT hatchet.task_status(:'f');
-- Not claimable before its backoff is over.
SELECT count(*) AS too_early FROM hatchet.dequeue('life');
-- Pretend the backoff passed; the dequeue promotes it.
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE task_id = :'f';
SELECT retry_count, priority FROM hatchet.dequeue('life');
SELECT hatchet.fail(:'f', 1, 'second failure');
SELECT retry_count,
       ready_at - (SELECT max(created_at) FROM hatchet.task_events WHERE task_id = :'f' AND event_type = 'RETRYING')
       = interval '50 seconds' AS capped_at_50s
FROM hatchet.delayed_queue WHERE task_id = :'f';
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE task_id = :'f';
SELECT retry_count FROM hatchet.dequeue('life');
-- A non-retryable failure ends the task even with retries left.
SELECT hatchet.fail(:'f', 2, 'fatal', retryable => false);
SELECT hatchet.task_status(:'f');
SELECT event_type, retry_count, reason FROM hatchet.task_events(:'f');

-- Retries without backoff are queued at once; the last allowed failure is final.
SELECT hatchet.enqueue('life', retries => 1) AS g \gset
SELECT retry_count FROM hatchet.dequeue('life');
SELECT hatchet.fail(:'g', 0, 'oops');
SELECT retry_count, priority FROM hatchet.ready_queue WHERE task_id = :'g';
SELECT retry_count FROM hatchet.dequeue('life');
SELECT hatchet.fail(:'g', 1, 'oops again');
SELECT hatchet.task_status(:'g');
SELECT pg_temp.err(format('SELECT hatchet.fail(%L, 0, %L)', :'g', 'stale')) AS stale_fail;

-- refresh_timeout extends the running attempt's timeout; a stale attempt cannot.
SELECT hatchet.enqueue('life', execution_timeout => '30s') AS r \gset
SELECT timeout_at AS t0 FROM hatchet.dequeue('life') \gset
SELECT hatchet.refresh_timeout(:'r', 0, '1m') - :'t0'::timestamptz AS extended_by;
SELECT pg_temp.err(format('SELECT hatchet.refresh_timeout(%L, 1, %L)', :'r', '1m')) AS stale_refresh;
SELECT pg_temp.err(format('SELECT hatchet.refresh_timeout(%L, 0, %L)', :'r', 'soon')) AS bad_duration;
-- retry_count NULL names the running attempt; with nothing running it is rejected like a stale attempt.
SELECT hatchet.refresh_timeout(:'r', NULL, '1m') - :'t0'::timestamptz AS extended_by_again;
SELECT hatchet.complete(:'r', 0);
SELECT hatchet.task_status(:'r');
SELECT pg_temp.err(format('SELECT hatchet.refresh_timeout(%L, NULL, %L)', :'r', '1m')) AS refresh_finished;
SELECT pg_temp.err(format('SELECT hatchet.refresh_timeout(%L, NULL, %L)', gen_random_uuid(), '1m')) AS refresh_unknown;
SELECT event_type, reason FROM hatchet.task_events(:'r') WHERE event_type = 'TIMEOUT_REFRESHED';

-- cancel: queued, delayed and running tasks; a finished task is not cancelled; results after a cancel are stale.
SELECT hatchet.enqueue('life') AS q1 \gset
SELECT hatchet.cancel(:'q1') AS cancelled_queued;
SELECT hatchet.task_status(:'q1');
SELECT hatchet.enqueue('life', run_at => now() + interval '1 day') AS q2 \gset
SELECT hatchet.cancel(:'q2') AS cancelled_delayed;
SELECT hatchet.task_status(:'q2');
SELECT hatchet.enqueue('life') AS q3 \gset
SELECT count(*) FROM hatchet.dequeue('life');
SELECT hatchet.cancel(:'q3') AS cancelled_running;
SELECT hatchet.task_status(:'q3');
SELECT pg_temp.err(format('SELECT hatchet.complete(%L, 0)', :'q3')) AS complete_after_cancel;
SELECT hatchet.cancel(:'q3') AS cancel_twice;
SELECT hatchet.cancel(:'c') AS cancel_completed;
SELECT pg_temp.err(format('SELECT hatchet.cancel(%L)', '00000000-0000-7000-8000-000000000000')) AS cancel_unknown;
SELECT event_type, reason FROM hatchet.task_events(:'q3');

-- complete_many: one statement for a batch; stale entries are skipped, not errors.
SELECT hatchet.enqueue_many('batch', array_fill('{}'::jsonb, ARRAY[4])) AS ids \gset
SELECT count(*) FROM hatchet.dequeue('batch', n => 4);
SELECT hatchet.complete_many((:'ids'::uuid[])[1:3], ARRAY[0, 0, 7], ARRAY['{"a": 1}', '{}', '{}']::jsonb[]) AS completed;
SELECT hatchet.task_status(id) FROM unnest(:'ids'::uuid[]) WITH ORDINALITY AS u(id, ord) ORDER BY ord;
SELECT hatchet.complete_many(:'ids'::uuid[], ARRAY[0, 0, 0, 0]) AS completed_again;
SELECT pg_temp.err($$SELECT hatchet.complete_many(ARRAY[gen_random_uuid()], ARRAY[0, 1])$$) AS mismatched;
-- A task named twice: a pair naming its running attempt completes it (a stale pair beside it changes nothing), with
-- the output of the first such pair.
SELECT hatchet.enqueue_many('batch', array_fill('{}'::jsonb, ARRAY[2])) AS dup \gset
SELECT count(*) FROM hatchet.dequeue('batch', n => 2);
SELECT hatchet.complete_many(ARRAY[(:'dup'::uuid[])[1], (:'dup'::uuid[])[1]], ARRAY[3, 0],
                             ARRAY['{"stale": 1}', '{"running": 2}']::jsonb[]) AS stale_and_running;
SELECT hatchet.complete_many(ARRAY[(:'dup'::uuid[])[2], (:'dup'::uuid[])[1], (:'dup'::uuid[])[2]], ARRAY[0, 0, 0],
                             ARRAY['{"first": 1}', '{"again": 2}', '{"second": 3}']::jsonb[]) AS repeated;
SELECT p.data FROM hatchet.payloads p JOIN unnest(:'dup'::uuid[]) WITH ORDINALITY AS u(id, ord) ON p.task_id = u.id
WHERE p.kind = 'OUTPUT' ORDER BY u.ord;
SELECT count(*) AS completed_events FROM hatchet.task_events e
WHERE e.task_id = ANY (:'dup'::uuid[]) AND e.event_type = 'COMPLETED';
ROLLBACK;

-- Nothing in flight is left over by this file.
SELECT (SELECT count(*) FROM hatchet.running WHERE queue IN ('life', 'batch')) AS running,
       (SELECT count(*) FROM hatchet.ready_queue WHERE queue IN ('life', 'batch')) AS ready;
