-- Bad input: each a clear error with a specific SQLSTATE, and nothing written.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;
CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM hatchet.tasks) AS tasks, (SELECT count(*) FROM hatchet.ready_queue) AS ready,
    (SELECT count(*) FROM hatchet.task_events) AS events, (SELECT count(*) FROM hatchet.queues) AS queues;

SELECT pg_temp.err($$SELECT hatchet.enqueue(NULL)$$) AS null_queue;
SELECT pg_temp.err($$SELECT hatchet.enqueue('')$$) AS empty_queue;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', priority => 0)$$) AS priority_0;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', priority => 4)$$) AS priority_4;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', retries => -1)$$) AS negative_retries;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', backoff_factor => 0)$$) AS zero_backoff;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', backoff_max_seconds => -5)$$) AS negative_backoff_max;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', execution_timeout => '5 minutes')$$) AS malformed_duration;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', schedule_timeout => '10')$$) AS duration_without_unit;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', execution_timeout => '0s')$$) AS zero_duration;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', execution_timeout => NULL)$$) AS null_duration;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', '[1, 2]')$$) AS array_input;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', '"text"')$$) AS string_input;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', NULL)$$) AS null_input;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', additional_metadata => '[]')$$) AS array_metadata;
-- The payload limit is hatchet.max_payload_bytes (default 4 MiB, Hatchet's gRPC message limit).
SHOW hatchet.max_payload_bytes;
SET hatchet.max_payload_bytes = 2048;
SELECT pg_temp.err($$SELECT hatchet.enqueue('q', jsonb_build_object('blob', repeat('x', 5000)))$$) AS oversized_input;
SELECT pg_temp.err($$SELECT hatchet.enqueue_many('q', ARRAY['{}', jsonb_build_object('blob', repeat('x', 5000))])$$)
    AS oversized_in_batch;
RESET hatchet.max_payload_bytes;
SELECT pg_temp.err($$SELECT hatchet.enqueue_many('q', ARRAY['{}', '[]']::jsonb[])$$) AS bad_input_in_batch;
SELECT pg_temp.err($$SELECT hatchet.enqueue_many('q', NULL)$$) AS null_inputs;
SELECT pg_temp.err($$SELECT hatchet.task_status('00000000-0000-7000-8000-000000000000')$$) AS unknown_task;
SELECT pg_temp.err($$SELECT hatchet.task_status(gen_random_uuid())$$) AS v4_id;
SELECT pg_temp.err($$SELECT * FROM hatchet.task_events('00000000-0000-7000-8000-000000000000')$$) AS unknown_timeline;
SELECT pg_temp.err($$SELECT hatchet.complete('00000000-0000-7000-8000-000000000000', 0)$$) AS complete_unknown;
SELECT pg_temp.err($$SELECT hatchet.complete(NULL, 0)$$) AS complete_null;
SELECT pg_temp.err($$SELECT hatchet.fail('00000000-0000-7000-8000-000000000000', 0, NULL)$$) AS fail_null_error;
SELECT pg_temp.err($$SELECT hatchet.parse_duration('1h30')$$) AS dangling_number;
SELECT hatchet.parse_duration('1h30m') AS ok_duration, hatchet.parse_duration('150ms') AS ms,
       hatchet.parse_duration('1.5h') AS fractional, hatchet.parse_duration('2d') AS days;

-- Nothing was written by any of the failed calls.
SELECT (SELECT count(*) FROM hatchet.tasks) = b.tasks AS no_tasks, (SELECT count(*) FROM hatchet.ready_queue) = b.ready AS no_ready,
       (SELECT count(*) FROM hatchet.task_events) = b.events AS no_events, (SELECT count(*) FROM hatchet.queues) = b.queues AS no_queues
FROM before b;
