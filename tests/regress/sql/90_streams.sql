-- Streams: chunks put by a task, read back by run in arrival order, stored once per (attempt, event_index),
-- announced on hatchet_stream, pruned after the run finished.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

SELECT hatchet.enqueue('streamer', '{}') AS t \gset
SELECT task_id = :'t' AS claimed FROM hatchet.dequeue('streamer', 'w');
SELECT hatchet.put_stream_chunk(:'t', 'one'::bytea, 0) AS stored;
SELECT hatchet.put_stream_chunk(:'t', 'two'::bytea, 1) AS stored;
-- A resent chunk (same attempt, same index) is stored once.
SELECT hatchet.put_stream_chunk(:'t', 'one'::bytea, 0) AS stored;
-- Chunks without an index are kept in arrival order.
SELECT hatchet.put_stream_chunk(:'t', 'three'::bytea) AS stored;
SELECT event_index, convert_from(message, 'UTF8') AS message, retry_count, task_id = :'t' AS same_task
FROM hatchet.read_stream_chunks(:'t') ORDER BY seq;
-- Paging by sequence number: only what came after.
SELECT convert_from(message, 'UTF8') AS message
FROM hatchet.read_stream_chunks(:'t', (SELECT min(seq) FROM hatchet.read_stream_chunks(:'t'))) ORDER BY seq;
-- Settled only once older than the settle interval.
SELECT bool_or(settled) AS any_settled FROM hatchet.read_stream_chunks(:'t');
SELECT bool_and(settled) AS all_settled FROM hatchet.read_stream_chunks(:'t', settle => '-1 hour');

-- Bad input stores nothing.
SELECT pg_temp.err($$SELECT hatchet.put_stream_chunk(hatchet.gen_id(), 'x'::bytea, 0)$$);
SELECT pg_temp.err(format('SELECT hatchet.put_stream_chunk(%L, ''x''::bytea, -1)', :'t'));
SELECT pg_temp.err(format('SELECT hatchet.put_stream_chunk(%L, NULL, 5)', :'t'));
SELECT pg_temp.err($$SELECT hatchet.put_stream_chunk(NULL, 'x'::bytea)$$);
SELECT count(*) AS chunks FROM hatchet.stream_chunks;

-- The state a subscriber reads: run and task status, output when done.
SELECT s->>'status' AS run, s->'tasks'->0->>'status' AS task FROM hatchet.run_stream_state(:'t') s;
SELECT pg_temp.err($$SELECT hatchet.run_stream_state(hatchet.gen_id())$$);
SELECT hatchet.complete(:'t', 0, '{"n": 3}');
SELECT s->>'status' AS run, s->'tasks'->0->'output' AS output FROM hatchet.run_stream_state(:'t') s;

-- Retention: a running run keeps its chunks; a finished one loses them after the grace period.
SELECT hatchet.enqueue('streamer', '{}') AS r \gset
SELECT task_id = :'r' AS claimed FROM hatchet.dequeue('streamer', 'w');
SELECT hatchet.put_stream_chunk(:'r', 'still running'::bytea, 0) AS stored;
SELECT hatchet.prune_stream_chunks(grace => '1 hour') AS pruned;
SELECT pg_sleep(0.05);
SELECT hatchet.prune_stream_chunks(grace => '10 milliseconds') AS pruned;
SELECT convert_from(message, 'UTF8') AS left_over FROM hatchet.stream_chunks ORDER BY seq;
-- Anything older than max_age goes, finished or not.
SELECT hatchet.prune_stream_chunks(grace => '1 hour', max_age => '-1 hour') AS pruned;
SELECT count(*) AS chunks FROM hatchet.stream_chunks;

-- Runs by additional metadata, from a point in time on (subscriptions by metadata page forward with it).
SELECT hatchet.register_workflow('{"name": "tagged", "tasks": [{"readable_id": "t"}]}') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('tagged', '{}', '{"order": "o-1"}') AS r1 \gset
SELECT hatchet.run_workflow('tagged', '{}', '{"order": "o-2"}') AS r2 \gset
SELECT hatchet.run_workflow('tagged', '{}', '{"order": "o-1", "x": 1}') AS r3 \gset
SELECT count(*) AS matched, bool_and(run_id IN (:'r1', :'r3')) AS the_right_ones
FROM hatchet.find_runs_by_metadata(hatchet.default_tenant(), 'order', 'o-1', now() - interval '1 minute');
SELECT count(*) AS none_later
FROM hatchet.find_runs_by_metadata(hatchet.default_tenant(), 'order', 'o-1', now() + interval '1 minute');
SELECT count(*) AS other_key FROM hatchet.find_runs_by_metadata(hatchet.default_tenant(), 'x', '1', '-infinity');
