-- Quotas on what tasks write (issue 15): per-item and per-task limits on log lines and stream chunks, and a limit on
-- failure texts. Beyond them SQLSTATE 54000, and nothing is stored or changed.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

SHOW hatchet.max_log_line_bytes;
SHOW hatchet.max_logs_per_task;
SHOW hatchet.max_stream_chunk_bytes;
SHOW hatchet.max_stream_chunks_per_task;
SHOW hatchet.max_error_bytes;

BEGIN;
SELECT hatchet.enqueue('quota') AS t \gset
SELECT count(*) AS claimed FROM hatchet.dequeue('quota', 'w');

-- Log lines: one over the size limit, then one beyond the count limit.
SET LOCAL hatchet.max_log_line_bytes = 100;
SET LOCAL hatchet.max_logs_per_task = 3;
SELECT pg_temp.err(format('SELECT hatchet.put_log(%L, %L)', :'t', repeat('x', 101))) AS line_too_long;
SELECT count(hatchet.put_log(:'t', 'line ' || i)) AS lines FROM generate_series(1, 3) i;
SELECT pg_temp.err(format('SELECT hatchet.put_log(%L, %L)', :'t', 'one too many')) AS one_line_too_many;
SELECT message FROM hatchet.task_logs(:'t') ORDER BY message;

-- Stream chunks: the same two limits.
SET LOCAL hatchet.max_stream_chunk_bytes = 16;
SET LOCAL hatchet.max_stream_chunks_per_task = 2;
SELECT pg_temp.err(format('SELECT hatchet.put_stream_chunk(%L, %L::bytea)', :'t', repeat('x', 17))) AS chunk_too_big;
SELECT hatchet.put_stream_chunk(:'t', 'a'::bytea) AS first, hatchet.put_stream_chunk(:'t', 'b'::bytea) AS second;
SELECT pg_temp.err(format('SELECT hatchet.put_stream_chunk(%L, %L::bytea)', :'t', 'c')) AS one_chunk_too_many;
SELECT count(*) AS chunks FROM hatchet.stream_chunks WHERE task_id = :'t';

-- A failure text over the limit is refused and the attempt keeps running; a shorter one fails it.
SET LOCAL hatchet.max_error_bytes = 2048;
SELECT pg_temp.err(format('SELECT hatchet.fail(%L, 0, %L)', :'t', repeat('e', 2049))) AS error_too_long;
SELECT hatchet.task_status(:'t') AS after_refused_failure;
SELECT hatchet.fail(:'t', 0, 'short enough', retryable => false) AS failed;
ROLLBACK;
