-- enqueue / enqueue_many: what is written, transactional visibility, idempotency keys.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

BEGIN;
SELECT hatchet.enqueue('emails', '{"to": "a@example.com"}', additional_metadata => '{"source": "signup"}') AS id \gset
-- One task row (with its options), one ready attempt, nothing else in flight.
SELECT queue, input, additional_metadata, priority, retries, execution_timeout, schedule_timeout, run_id = id AS own_run,
       inserted_at = hatchet.uuid_time(id) AS inserted_at_is_id_time
FROM hatchet.tasks WHERE id = :'id';
SELECT queue, priority, retry_count, schedule_timeout_at > now() + interval '4 minutes' AS schedule_timeout_set
FROM hatchet.ready_queue WHERE task_id = :'id';
SELECT hatchet.task_status(:'id');
SELECT event_type, retry_count, reason FROM hatchet.task_events(:'id');
ROLLBACK;

-- A rolled-back enqueue leaves no trace anywhere.
BEGIN;
SELECT hatchet.enqueue('rollback_q') AS gone \gset
ROLLBACK;
SELECT (SELECT count(*) FROM hatchet.tasks WHERE id = :'gone') AS tasks,
       (SELECT count(*) FROM hatchet.ready_queue WHERE task_id = :'gone') AS ready,
       (SELECT count(*) FROM hatchet.task_events WHERE task_id = :'gone') AS events;
SELECT pg_temp.err(format('SELECT hatchet.task_status(%L)', :'gone'));

BEGIN;
-- Options are stored as given; durations use Hatchet's strings.
SELECT hatchet.enqueue('opts', '{}', priority => 3, retries => 5, backoff_factor => 1.5, backoff_max_seconds => 60,
                       execution_timeout => '1h30m', schedule_timeout => '90s') AS o \gset
SELECT priority, retries, backoff_factor, backoff_max_seconds, execution_timeout, schedule_timeout
FROM hatchet.tasks WHERE id = :'o';

-- run_at in the future: the attempt waits in the delayed queue, SCHEDULED in the timeline, still QUEUED.
SELECT hatchet.enqueue('later', run_at => now() + interval '1 hour') AS l \gset
SELECT reason, ready_at = now() + interval '1 hour' AS at_run_at FROM hatchet.delayed_queue WHERE task_id = :'l';
SELECT count(*) AS ready FROM hatchet.ready_queue WHERE task_id = :'l';
SELECT hatchet.task_status(:'l');
SELECT event_type FROM hatchet.task_events(:'l');
-- run_at in the past is ready now.
SELECT hatchet.enqueue('later', run_at => now() - interval '1 minute') AS p \gset
SELECT count(*) AS ready FROM hatchet.ready_queue WHERE task_id = :'p';

-- Idempotency: the same key returns the same unfinished task; the key is freed when the task finishes.
SELECT hatchet.enqueue('idem', '{"n": 1}', idempotency_key => 'order-42') AS k1 \gset
SELECT hatchet.enqueue('idem', '{"n": 2}', idempotency_key => 'order-42') = :'k1' AS same_task;
SELECT count(*) AS tasks FROM hatchet.tasks WHERE queue = 'idem';
SELECT task_id = :'k1' AS claimed FROM hatchet.dequeue('idem');
SELECT hatchet.complete(:'k1', 0);
SELECT hatchet.enqueue('idem', '{"n": 3}', idempotency_key => 'order-42') <> :'k1' AS new_task_after_finish;

-- enqueue_many: ids in input order, FIFO in that order, one task per input.
SELECT hatchet.enqueue_many('bulk', ARRAY['{"i": 1}', '{"i": 2}', '{"i": 3}']::jsonb[]) AS ids \gset
SELECT cardinality(:'ids'::uuid[]) AS n;
SELECT t.input FROM unnest(:'ids'::uuid[]) WITH ORDINALITY AS u(id, ord)
JOIN hatchet.tasks t ON t.id = u.id ORDER BY u.ord;
SELECT input FROM hatchet.dequeue('bulk', n => 10);
SELECT hatchet.enqueue_many('bulk', '{}') AS empty_batch;
ROLLBACK;
