-- Checks of caller-supplied options and JSON that several files share. A check used by one file only lives in that
-- file (enqueue's options in tasks.sql, concurrency and rate-limit options in flow_control.sql, placement in
-- workers.sql, workflow definitions in workflows.sql).
--
-- Public: none. Internal: _check_payload (tasks, workers, workflows, runs, events, crons), _check_size and
-- _check_count (tasks, streams), _check_run_options (runs, crons), _check_page and _page_fits (runs, events),
-- _json_int (workflows, events), _clean_metadata (events, crons).
-- Calls: nothing.

CREATE FUNCTION hatchet._check_payload(what text, payload jsonb, must_be_object boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit integer := current_setting('hatchet.max_payload_bytes')::integer;
    v_size  integer;
BEGIN
    IF payload IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY[what]);
    END IF;
    IF must_be_object AND jsonb_typeof(payload) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('%s must be a JSON object, not %s', what, jsonb_typeof(payload))]);
    END IF;
    v_size := pg_column_size(payload);
    IF v_size > v_limit THEN
        PERFORM hatchet.raise_error('payload_too_large', ARRAY[what, v_size::text, v_limit::text]);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_payload(text, jsonb, boolean) IS 'reject a NULL, non-object or oversized payload';

-- The input, metadata and priority of a workflow run, as run_workflow, create_cron and schedule take them (a NULL
-- priority means the workflow's default).
CREATE FUNCTION hatchet._check_run_options(p_input jsonb, p_metadata jsonb, p_priority integer) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM hatchet._check_payload('input', p_input);
    PERFORM hatchet._check_payload('additional_metadata', p_metadata);
    IF p_priority IS NOT NULL AND p_priority NOT BETWEEN 1 AND 3 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('priority must be between 1 and 3, not %s', p_priority)]);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_run_options(jsonb, jsonb, integer) IS
    'reject a bad input, metadata or priority of a workflow run (run_workflow, crons, schedules)';

-- One page of a list function: "limit" rows (1 to 1000) after skipping "offset" (zero or more).
CREATE FUNCTION hatchet._check_page(p_limit integer, p_offset integer) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('limit must be between 1 and 1000, not %s',
                                                                     coalesce(p_limit::text, 'null'))]);
    END IF;
    IF p_offset IS NULL OR p_offset < 0 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('offset must not be negative, not %s',
                                                                     coalesce(p_offset::text, 'null'))]);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_page(integer, integer) IS 'reject a limit outside 1..1000 or a negative offset';

-- The payloads of one page of a list function fit in 16 MiB: true, or 54000 naming what to do instead.
CREATE FUNCTION hatchet._page_fits(p_what text, p_bytes bigint) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(p_bytes, 0) > 16 * 1024 * 1024 THEN
        PERFORM hatchet.raise_error('limit_exceeded', ARRAY[format(
            'the %s of this page are %s bytes, over the limit of 16777216 bytes: ask for fewer rows or leave the '
            'payloads out', p_what, p_bytes)]);
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION hatchet._page_fits(text, bigint) IS
    'true when one page''s payloads fit in 16 MiB; 54000 otherwise (list_runs, list_events)';

-- Quotas on what tasks write (logs, stream chunks, failure texts): 54000 when one item is over the byte limit named by
-- the setting p_setting.
CREATE FUNCTION hatchet._check_size(p_what text, p_bytes integer, p_setting text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit integer := current_setting(p_setting)::integer;
BEGIN
    IF p_bytes > v_limit THEN
        PERFORM hatchet.raise_error('limit_exceeded', ARRAY[format('%s is %s bytes, over the limit of %s bytes (%s)',
                                                                   p_what, p_bytes, v_limit, p_setting)]);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_size(text, integer, text) IS 'reject an item over the byte limit of a setting (54000)';

-- 54000 when a task already wrote as many items (p_count, counted up to the limit) as the setting p_setting allows.
CREATE FUNCTION hatchet._check_count(p_what text, p_task uuid, p_setting text, p_count bigint) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit integer := current_setting(p_setting)::integer;
BEGIN
    IF p_count >= v_limit THEN
        PERFORM hatchet.raise_error('limit_exceeded', ARRAY[format('task "%s" already wrote %s %s, the limit (%s)',
                                                                   p_task, v_limit, p_what, p_setting)]);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_count(text, uuid, text, bigint) IS
    'reject one more item of a task that reached the count limit of a setting (54000)';

-- An optional integer field (JSON number, or a string of digits as proto3 JSON writes int64).
CREATE FUNCTION hatchet._json_int(p_value jsonb, p_what text, p_workflow text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p_value) IN ('number', 'string') AND (p_value #>> '{}') ~ '^-?[0-9]{1,9}$' THEN
        RETURN (p_value #>> '{}')::integer;
    END IF;
    PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
        format('%s must be an integer, not %s', p_what, p_value)]);
    RETURN NULL;
END
$$;

-- Metadata keys starting with hatchet__ are reserved for the engine (event id and key, cron name and expression,
-- scheduled time): a caller's own are dropped, as Hatchet does.
CREATE FUNCTION hatchet._clean_metadata(p_metadata jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM jsonb_each(coalesce(p_metadata, '{}')) AS x(k, v)
    WHERE k NOT LIKE 'hatchet\_\_%'
$$;
