-- OpenTelemetry traces (issue 20): hatchet.put_spans stores the spans an SDK exported, once each, and refuses an
-- oversized export with 54000 (nothing stored); hatchet.run_trace returns the trace of a run or task: the stored spans
-- of its trace and the engine's spans derived from the run (the run, the event that triggered it, each attempt's time
-- in the queue and on its worker, ERROR for a failed attempt), paged; 42704 for what neither exists nor was traced.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;
-- A span as the server decodes it (trace 0123..., span id from n).
CREATE FUNCTION pg_temp.span(n integer, name text, run uuid DEFAULT NULL, parent text DEFAULT NULL,
                             attrs jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('trace_id', '0123456789abcdef0123456789abcdef', 'span_id', lpad(to_hex(n), 16, '0'),
        'parent_span_id', parent, 'name', name, 'kind', 'INTERNAL', 'service_name', 'svc', 'status_code', 'UNSET',
        'start_time', now() + n * interval '1 millisecond', 'duration_ns', 1000,
        'span_attributes', attrs, 'run_id', run, 'task_id', run)
$$;

BEGIN;
SELECT hatchet.register_workflow($${"name": "Traced", "tasks": [{"readable_id": "t", "retries": 1}]}$$) IS NOT NULL
    AS registered;
SELECT hatchet.run_workflow('Traced', additional_metadata =>
    '{"traceparent": "00-0123456789abcdef0123456789abcdef-00000000000000aa-01"}') AS run \gset
-- Attempt 0 fails, attempt 1 completes.
SELECT retry_count FROM hatchet.dequeue('traced:t');
SELECT hatchet.fail(:'run', 0, 'boom');
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE task_id = :'run';
SELECT retry_count FROM hatchet.dequeue('traced:t');
SELECT hatchet.complete(:'run', 1, '{"ok": true}');

-- Before any span is stored the trace is the engine's alone, in the trace of the run's traceparent.
SELECT name, parent_span_id IS NOT NULL AS has_parent, status_code, status_message, retry_count,
       span_attributes ->> 'hatchet.step_name' AS step, total
FROM hatchet.run_trace(:'run') ORDER BY name, retry_count;
SELECT count(DISTINCT trace_id) AS traces, min(trace_id) FROM hatchet.run_trace(:'run');
SELECT parent_span_id FROM hatchet.run_trace(:'run') WHERE name = 'hatchet.engine.workflow_run';

-- Spans of the run; one repeated in the same export and another exported twice are stored once.
SELECT hatchet.put_spans(jsonb_build_array(
    pg_temp.span(1, 'hatchet.run_workflow'),
    pg_temp.span(2, 'hatchet.start_step_run', :'run', '00000000000000aa'),
    pg_temp.span(3, 'custom', :'run', '0000000000000002', '{"n": 3}'),
    pg_temp.span(3, 'custom', :'run', '0000000000000002', '{"n": 3}'))) AS stored;
SELECT hatchet.put_spans(jsonb_build_array(pg_temp.span(1, 'hatchet.run_workflow'))) AS stored_again;
SELECT name, kind, CASE WHEN name = 'hatchet.start_step_run' THEN '(checked below)' ELSE parent_span_id END AS parent,
       retry_count, total
FROM hatchet.run_trace(:'run') WHERE service_name = 'svc' ORDER BY span_id;
-- The SDK's step span hangs under the engine's workflow_run span.
SELECT (SELECT parent_span_id FROM hatchet.run_trace(:'run') WHERE name = 'hatchet.start_step_run')
     = (SELECT span_id FROM hatchet.run_trace(:'run') WHERE name = 'hatchet.engine.workflow_run') AS reparented;
-- Paging.
SELECT count(*) AS page, min(total) AS total FROM hatchet.run_trace(:'run', "offset" => 2, "limit" => 3);
SELECT count(*) AS past_the_end FROM hatchet.run_trace(:'run', "offset" => 100);

-- Refused, nothing stored: too many spans, oversized attributes, bad ids, not an array, bad paging, unknown run.
SELECT pg_temp.err($$SELECT hatchet.put_spans((SELECT jsonb_agg(pg_temp.span(100 + g, 'x'))
                                               FROM generate_series(1, 1001) g))$$) AS too_many;
SELECT pg_temp.err($$SELECT hatchet.put_spans(jsonb_build_array(pg_temp.span(200, 'ok'),
    pg_temp.span(201, 'big', attrs => jsonb_build_object('blob', repeat('x', 70000)))))$$) AS too_big;
SELECT pg_temp.err($$SELECT hatchet.put_spans(jsonb_build_array(pg_temp.span(202, 'ok'),
    pg_temp.span(203, 'bad') || '{"trace_id": "xyz"}'))$$) AS bad_trace_id;
SELECT pg_temp.err($$SELECT hatchet.put_spans('{}')$$) AS not_an_array;
SELECT count(*) AS stored_spans FROM hatchet.otel_spans;
SELECT pg_temp.err(format('SELECT * FROM hatchet.run_trace(%L, "limit" => 0)', :'run')) AS bad_limit;
SELECT pg_temp.err($$SELECT * FROM hatchet.run_trace('00000000-0000-7000-8000-000000000001')$$) AS unknown_run;
-- Spans of another tenant's run are stored under the caller's tenant only: the default tenant's read sees its own.
SELECT hatchet.create_tenant('traces-other') AS other \gset
SELECT pg_temp.err(format('SELECT * FROM hatchet.run_trace(%L, tenant_id => %L)', :'run', :'other'))
    AS other_tenant_read;

-- Retention: the spans live in daily partitions like the other history tables.
SELECT 'otel_spans' = ANY (hatchet.partitioned_tables()) AS partitioned;
ROLLBACK;
