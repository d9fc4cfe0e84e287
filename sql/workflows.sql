-- Workflows: registration of a definition (Hatchet's CreateWorkflowVersionRequest, normalised into workflow_versions
-- and task_definitions), the latest version of a workflow, what a task definition says about flow control when one of
-- its tasks is created, and the workflow reads. Running a workflow is runs.sql.
--
-- Public: register_workflow, list_workflows, pause_workflow, unpause_workflow, delete_workflow.
-- Calls: tenants.sql, options.sql, flow_control.sql (put_rate_limit: limits a definition declares).

-- ---------------------------------------------------------------------------------------------------------------------
-- Registration: normalising Hatchet's CreateWorkflowVersionRequest
-- ---------------------------------------------------------------------------------------------------------------------

-- A proto enum given either by name (any case) or by number (the proto's field value).
CREATE FUNCTION hatchet._enum_name(p_value jsonb, p_names text[], p_what text, p_workflow text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text;
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p_value) = 'number' THEN
        IF p_value::text ~ '^[0-9]+$' AND p_value::text::integer < cardinality(p_names) THEN
            RETURN p_names[p_value::text::integer + 1];
        END IF;
    ELSIF jsonb_typeof(p_value) = 'string' THEN
        v := upper(p_value #>> '{}');
        IF v = ANY (p_names) THEN
            RETURN v;
        END IF;
    END IF;
    PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
        format('%s must be one of %s, not %s', p_what, array_to_string(p_names, ', '), p_value)]);
    RETURN NULL;
END
$$;

-- An optional list of strings.
CREATE FUNCTION hatchet._json_texts(p_value jsonb, p_what text, p_workflow text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(p_value) <> 'array'
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_value) e WHERE jsonb_typeof(e) <> 'string') THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
            format('%s must be a list of strings', p_what)]);
    END IF;
    RETURN ARRAY(SELECT e FROM jsonb_array_elements_text(p_value) WITH ORDINALITY AS x(e, ord) ORDER BY ord);
END
$$;

-- A JSON object given as an object or as JSON text (proto `string`/`bytes` fields such as cron_input).
CREATE FUNCTION hatchet._json_object(p_value jsonb, p_what text, p_workflow text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v jsonb := p_value;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) = 'string' THEN
        BEGIN
            v := (v #>> '{}')::jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, format('%s is not valid JSON', p_what)]);
        END;
    END IF;
    IF jsonb_typeof(v) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, format('%s must be a JSON object', p_what)]);
    END IF;
    RETURN v;
END
$$;

-- A duration string, validated; the error names where it was found.
CREATE FUNCTION hatchet._json_duration(p_value jsonb, p_default text, p_what text, p_workflow text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := coalesce(nullif(p_value #>> '{}', ''), p_default);
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        PERFORM hatchet.parse_duration(v);
    EXCEPTION WHEN invalid_parameter_value THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, format('%s: %s', p_what, SQLERRM)]);
    END;
    RETURN v;
END
$$;

-- One condition in our stored form: {kind: parent | sleep | event, or_group, expression, data_key,
-- parent | sleep_for | key, scope}. p_list is wait_for, skip_if or cancel_if; p_ord its position there.
CREATE FUNCTION hatchet._normalise_condition(p_workflow text, p_task text, p_list text, p_ord bigint, p_c jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_kind text := p_c->>'kind';
    v_where text := format('task "%s" %s[%s]', p_task, p_list, p_ord);
    v_out jsonb;
BEGIN
    IF jsonb_typeof(p_c) IS DISTINCT FROM 'object' THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, format('%s must be an object', v_where)]);
    END IF;
    v_out := jsonb_build_object('kind', v_kind,
                                'or_group', coalesce(nullif(p_c->>'or_group', ''), format('%s:%s', p_list, p_ord)),
                                'expression', nullif(p_c->>'expression', ''),
                                'data_key', nullif(p_c->>'data_key', ''));
    CASE v_kind
        WHEN 'parent' THEN
            IF coalesce(p_c->>'parent', '') = '' THEN
                PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
                    format('%s: a parent condition needs the parent''s readable id', v_where)]);
            END IF;
            v_out := v_out || jsonb_build_object('parent', p_c->>'parent');
        WHEN 'sleep' THEN
            v_out := v_out || jsonb_build_object('sleep_for',
                hatchet._json_duration(coalesce(p_c->'sleep_for', '""'), NULL, v_where || ' sleep_for', p_workflow));
            IF v_out->>'sleep_for' IS NULL THEN
                PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
                    format('%s: a sleep condition needs sleep_for', v_where)]);
            END IF;
        WHEN 'event' THEN
            IF coalesce(p_c->>'key', '') = '' THEN
                PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
                    format('%s: a user event condition needs an event key', v_where)]);
            END IF;
            v_out := v_out || jsonb_build_object('key', p_c->>'key', 'scope', nullif(p_c->>'scope', ''));
        ELSE
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
                format('%s: kind must be parent, sleep or event, not %s', v_where, coalesce(v_kind, 'null'))]);
    END CASE;
    IF v_out->>'expression' IS NOT NULL THEN
        PERFORM hatchet.cel_check(v_out->>'expression');
    END IF;
    RETURN jsonb_strip_nulls(v_out);
END
$$;

-- A task's conditions as {wait_for: [...], skip_if: [...], cancel_if: [...]} (empty lists omitted), from either the
-- proto's TaskConditions (parent_override_conditions, sleep_conditions, user_event_conditions, each with a `base`
-- carrying action CREATE/QUEUE/CANCEL/SKIP, or_group_id, expression, readable_data_key) or that stored form itself.
CREATE FUNCTION hatchet._normalise_conditions(p_workflow text, p_task text, p_parents text[], p_c jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_lists constant text[] := ARRAY['wait_for', 'skip_if', 'cancel_if'];
    v_raw jsonb := '{"wait_for": [], "skip_if": [], "cancel_if": []}';
    v_out jsonb := '{}';
    v_list text;
    v_item jsonb;
    v_base jsonb;
    v_conv jsonb;
    v_action text;
    v_norm jsonb;
    v_arr jsonb;
    v_ord bigint;
BEGIN
    IF p_c IS NULL OR jsonb_typeof(p_c) = 'null' OR p_c = '{}'::jsonb THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(p_c) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
            format('task "%s": conditions must be an object', p_task)]);
    END IF;
    IF p_c ?| v_lists THEN
        FOREACH v_list IN ARRAY v_lists LOOP
            IF p_c ? v_list AND jsonb_typeof(p_c->v_list) <> 'array' THEN
                PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
                    format('task "%s": %s must be a list', p_task, v_list)]);
            END IF;
            v_raw := jsonb_set(v_raw, ARRAY[v_list], coalesce(p_c->v_list, '[]'));
        END LOOP;
    ELSE
        FOR v_item, v_conv IN
            SELECT e, jsonb_build_object('kind', 'parent', 'parent', e->>'parent_readable_id')
            FROM jsonb_array_elements(coalesce(p_c->'parent_override_conditions', '[]')) e
            UNION ALL
            SELECT e, jsonb_build_object('kind', 'sleep', 'sleep_for', e->'sleep_for')
            FROM jsonb_array_elements(coalesce(p_c->'sleep_conditions', '[]')) e
            UNION ALL
            SELECT e, jsonb_build_object('kind', 'event', 'key', e->>'user_event_key', 'scope', e->>'event_scope')
            FROM jsonb_array_elements(coalesce(p_c->'user_event_conditions', '[]')) e
        LOOP
            v_base := coalesce(v_item->'base', '{}');
            v_action := coalesce(hatchet._enum_name(v_base->'action', ARRAY['CREATE', 'QUEUE', 'CANCEL', 'SKIP'],
                                                    format('task "%s" condition action', p_task), p_workflow),
                                 'CREATE');
            v_list := CASE v_action WHEN 'SKIP' THEN 'skip_if' WHEN 'CANCEL' THEN 'cancel_if' ELSE 'wait_for' END;
            v_raw := jsonb_set(v_raw, ARRAY[v_list], (v_raw->v_list) || jsonb_build_array(jsonb_strip_nulls(
                v_conv || jsonb_build_object('or_group', v_base->>'or_group_id', 'expression', v_base->>'expression',
                                             'data_key', v_base->>'readable_data_key'))));
        END LOOP;
    END IF;

    FOREACH v_list IN ARRAY v_lists LOOP
        v_arr := '[]';
        FOR v_item, v_ord IN SELECT e, ord FROM jsonb_array_elements(v_raw->v_list) WITH ORDINALITY AS x(e, ord) LOOP
            v_norm := hatchet._normalise_condition(p_workflow, p_task, v_list, v_ord, v_item);
            IF v_norm->>'kind' = 'parent' AND NOT (v_norm->>'parent' = ANY (p_parents)) THEN
                PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
                    format('task "%s" has a condition on "%s", which is not one of its parents', p_task,
                           v_norm->>'parent')]);
            END IF;
            v_arr := v_arr || jsonb_build_array(v_norm);
        END LOOP;
        IF v_arr <> '[]' THEN
            v_out := v_out || jsonb_build_object(v_list, v_arr);
        END IF;
    END LOOP;
    RETURN v_out;
END
$$;

-- One task of a definition (Hatchet's CreateTaskOpts) in stored form, validated. Durations stay strings (as sent).
CREATE FUNCTION hatchet._normalise_task(p_workflow text, p_t jsonb, p_on_failure boolean) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rid      text := p_t->>'readable_id';
    v_parents  text[];
    v_what     text;
    v_durable  boolean;
    v_slots    jsonb;
    v_conc     jsonb;
    v_rl       jsonb;
    v_labels   jsonb;
    v_backoff  float8;
    v_item     jsonb;
    v_key      text;
    v_batch    jsonb;
BEGIN
    IF jsonb_typeof(p_t) IS DISTINCT FROM 'object' THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, 'each task must be a JSON object']);
    END IF;
    IF p_on_failure THEN
        v_rid := coalesce(nullif(v_rid, ''), 'on_failure');
    END IF;
    IF coalesce(v_rid, '') = '' THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, 'every task needs a readable_id']);
    END IF;
    v_what := format('task "%s"', v_rid);
    v_parents := hatchet._json_texts(p_t->'parents', v_what || ' parents', p_workflow);
    IF p_on_failure AND cardinality(v_parents) > 0 THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
            'the on_failure task must not have parents: it runs when any other task failed']);
    END IF;
    IF (SELECT count(DISTINCT p) FROM unnest(v_parents) p) <> cardinality(v_parents) THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, v_what || ' lists a parent twice']);
    END IF;

    v_durable := coalesce((p_t->>'is_durable')::boolean, false);
    v_slots := coalesce(nullif(p_t->'slot_requests', 'null'),
                        jsonb_build_object(CASE WHEN v_durable THEN 'durable' ELSE 'default' END, 1));
    IF jsonb_typeof(v_slots) <> 'object' OR v_slots = '{}'
       OR EXISTS (SELECT 1 FROM jsonb_each(v_slots) s WHERE jsonb_typeof(s.value) <> 'number'
                                                           OR (s.value #>> '{}')::numeric <= 0) THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
            v_what || ' slot_requests must map slot types to positive units']);
    END IF;

    v_backoff := (p_t->>'backoff_factor')::float8;
    IF v_backoff IS NOT NULL AND NOT (v_backoff > 0) THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, v_what || ' backoff_factor must be positive']);
    END IF;
    IF hatchet._json_int(p_t->'retries', v_what || ' retries', p_workflow) < 0 THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, v_what || ' retries must be zero or more']);
    END IF;
    IF hatchet._json_int(p_t->'backoff_max_seconds', v_what || ' backoff_max_seconds', p_workflow) <= 0 THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
            v_what || ' backoff_max_seconds must be positive']);
    END IF;

    -- Concurrency: [{expression, max_runs, strategy}] (the proto's Concurrency, one or a list).
    v_conc := '[]';
    FOR v_item IN SELECT e FROM jsonb_array_elements(CASE jsonb_typeof(p_t->'concurrency')
                                                     WHEN 'array' THEN p_t->'concurrency'
                                                     WHEN 'object' THEN jsonb_build_array(p_t->'concurrency')
                                                     ELSE '[]' END) e LOOP
        v_conc := v_conc || jsonb_build_array(hatchet._normalise_concurrency(p_workflow, v_what, v_item));
    END LOOP;

    -- Rate limits: [{key | key_expr, units | units_expr, limit_expr, duration}].
    v_rl := '[]';
    FOR v_item IN SELECT e FROM jsonb_array_elements(coalesce(nullif(p_t->'rate_limits', 'null'), '[]')) e LOOP
        IF coalesce(v_item->>'key', '') = '' AND coalesce(v_item->>'key_expr', '') = '' THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, v_what || ' has a rate limit without a key']);
        END IF;
        v_rl := v_rl || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
            'key', nullif(v_item->>'key', ''),
            'key_expr', nullif(v_item->>'key_expr', ''),
            'units', coalesce(hatchet._json_int(v_item->'units', v_what || ' rate limit units', p_workflow),
                              CASE WHEN coalesce(v_item->>'units_expr', '') = '' THEN 1 END),
            'units_expr', nullif(v_item->>'units_expr', ''),
            'limit_expr', coalesce(nullif(v_item->>'limit_expr', ''), nullif(v_item->>'limit_values_expr', '')),
            'duration', hatchet._enum_name(v_item->'duration',
                ARRAY['SECOND', 'MINUTE', 'HOUR', 'DAY', 'WEEK', 'MONTH', 'YEAR'], v_what || ' rate limit duration',
                p_workflow))));
    END LOOP;

    -- Desired worker labels: {label: {value, comparator, required, weight}}.
    v_labels := '{}';
    FOR v_key, v_item IN SELECT k, v FROM jsonb_each(coalesce(nullif(p_t->'worker_labels', 'null'), '{}')) x(k, v)
    LOOP
        v_labels := v_labels || jsonb_build_object(v_key, jsonb_strip_nulls(jsonb_build_object(
            'value', coalesce(v_item->'value', v_item->'str_value', v_item->'int_value'),
            'comparator', coalesce(hatchet._enum_name(v_item->'comparator',
                ARRAY['EQUAL', 'NOT_EQUAL', 'GREATER_THAN', 'GREATER_THAN_OR_EQUAL', 'LESS_THAN',
                      'LESS_THAN_OR_EQUAL'], v_what || ' worker label comparator', p_workflow), 'EQUAL'),
            'required', coalesce((v_item->>'required')::boolean, false),
            'weight', coalesce(hatchet._json_int(v_item->'weight', v_what || ' worker label weight', p_workflow), 100))));
    END LOOP;

    -- A batch task (the proto's TaskBatchConfig): {max_size, max_interval_ms, group_key, group_max_runs, broadcast}.
    v_item := nullif(p_t->'batch', 'null');
    IF v_item IS NOT NULL THEN
        IF jsonb_typeof(v_item) <> 'object' THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow, v_what || ' batch must be a JSON object']);
        END IF;
        v_batch := jsonb_strip_nulls(jsonb_build_object(
            'max_size', hatchet._json_int(coalesce(v_item->'batch_max_size', v_item->'max_size'),
                                          v_what || ' batch_max_size', p_workflow),
            'max_interval_ms', hatchet._json_int(coalesce(v_item->'batch_max_interval_ms', v_item->'max_interval_ms'),
                                                 v_what || ' batch_max_interval_ms', p_workflow),
            'group_key', nullif(coalesce(v_item->>'batch_group_key', v_item->>'group_key'), ''),
            'group_max_runs', hatchet._json_int(coalesce(v_item->'batch_group_max_runs', v_item->'group_max_runs'),
                                                v_what || ' batch_group_max_runs', p_workflow),
            'broadcast', CASE WHEN coalesce((coalesce(v_item->>'broadcast_output', v_item->>'broadcast'))::boolean, false)
                              THEN true END));
        IF coalesce((v_batch->>'max_size')::integer, 0) NOT BETWEEN 1 AND 1000 THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
                v_what || ' batch_max_size must be between 1 and 1000']);
        END IF;
        IF (v_batch->>'max_interval_ms')::integer <= 0 THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
                v_what || ' batch_max_interval_ms must be positive']);
        END IF;
        IF (v_batch->>'group_max_runs')::integer <= 0 THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
                v_what || ' batch_group_max_runs must be positive']);
        END IF;
    END IF;

    RETURN jsonb_strip_nulls(jsonb_build_object(
        'batch', v_batch,
        'readable_id', v_rid,
        'action', coalesce(nullif(p_t->>'action', ''), lower(p_workflow) || ':' || lower(v_rid)),
        'timeout', hatchet._json_duration(p_t->'timeout', '60s', v_what || ' timeout', p_workflow),
        'schedule_timeout', hatchet._json_duration(p_t->'schedule_timeout', '5m', v_what || ' schedule_timeout',
                                                   p_workflow),
        'parents', to_jsonb(v_parents),
        'retries', coalesce(hatchet._json_int(p_t->'retries', v_what || ' retries', p_workflow), 0),
        'backoff_factor', v_backoff,
        'backoff_max_seconds', hatchet._json_int(p_t->'backoff_max_seconds', v_what, p_workflow),
        'rate_limits', v_rl,
        'worker_labels', v_labels,
        'concurrency', v_conc,
        'conditions', hatchet._normalise_conditions(p_workflow, v_rid, v_parents, p_t->'conditions'),
        'is_durable', v_durable,
        'slot_requests', v_slots));
END
$$;

-- One concurrency setting (the proto's Concurrency): {expression, max_runs, strategy}. The proto's default strategy
-- is CANCEL_IN_PROGRESS (enum value 0) and max_runs defaults to 1, as in Hatchet.
CREATE FUNCTION hatchet._normalise_concurrency(p_workflow text, p_what text, p_c jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_strategy text;
    v_max integer;
BEGIN
    IF jsonb_typeof(p_c) IS DISTINCT FROM 'object' OR coalesce(p_c->>'expression', '') = '' THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
            p_what || ' concurrency needs a CEL expression for its key']);
    END IF;
    v_strategy := coalesce(hatchet._enum_name(coalesce(p_c->'limit_strategy', p_c->'strategy'),
        ARRAY['CANCEL_IN_PROGRESS', 'DROP_NEWEST', 'QUEUE_NEWEST', 'GROUP_ROUND_ROBIN', 'CANCEL_NEWEST',
              'CANCEL_QUEUED_EXCEPT_NEWEST', 'CANCEL_QUEUED_EXCEPT_OLDEST'],
        p_what || ' concurrency strategy', p_workflow), 'CANCEL_IN_PROGRESS');
    IF NOT (v_strategy = ANY (enum_range(NULL::hatchet.concurrency_strategy)::text[])) THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
            format('%s concurrency strategy %s is not supported (use %s)', p_what, v_strategy,
                   array_to_string(enum_range(NULL::hatchet.concurrency_strategy)::text[], ', '))]);
    END IF;
    v_max := coalesce(hatchet._json_int(p_c->'max_runs', p_what || ' concurrency max_runs', p_workflow), 1);
    IF v_max < 1 THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[p_workflow,
            p_what || ' concurrency max_runs must be at least 1']);
    END IF;
    PERFORM hatchet.cel_check(p_c->>'expression');
    RETURN jsonb_strip_nulls(jsonb_build_object('expression', p_c->>'expression', 'max_runs', v_max,
                                                'strategy', v_strategy, 'name', nullif(p_c->>'name', '')));
END
$$;

-- The whole definition in stored (normalised) form, validated: the DAG is acyclic, every parent exists, task names
-- are unique, durations and cron expressions parse. Registering the same normalised definition twice is a no-op.
CREATE FUNCTION hatchet._normalise_workflow(p_def jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
-- The recursive cycle check over jsonb_array_elements is estimated far above its real cost: without this, JIT
-- compilation alone takes ~150 ms per registration.
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name     text := p_def->>'name';
    v_tasks    jsonb := '[]';
    v_task     jsonb;
    v_onf      jsonb;
    v_dup      text;
    v_missing  record;
    v_cycle    text[];
    v_conc     jsonb := '[]';
    v_item     jsonb;
    v_filters  jsonb := '[]';
    v_prio     integer;
    v_cron     text;
    v_crons    text[];
    v_idem     jsonb;
BEGIN
    IF jsonb_typeof(p_def) IS DISTINCT FROM 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a workflow definition must be a JSON object']);
    END IF;
    IF coalesce(v_name, '') = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a workflow definition needs a "name"']);
    END IF;
    IF jsonb_typeof(p_def->'tasks') IS DISTINCT FROM 'array' OR jsonb_array_length(p_def->'tasks') = 0 THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name, 'it has no tasks']);
    END IF;
    FOR v_task IN SELECT e FROM jsonb_array_elements(p_def->'tasks') WITH ORDINALITY AS x(e, ord) ORDER BY ord LOOP
        v_tasks := v_tasks || jsonb_build_array(hatchet._normalise_task(v_name, v_task, false));
    END LOOP;
    IF jsonb_typeof(p_def->'on_failure_task') = 'object' THEN
        v_onf := hatchet._normalise_task(v_name, p_def->'on_failure_task', true);
        IF v_onf ? 'conditions' AND v_onf->'conditions' <> '{}' THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name, 'the on_failure task cannot have conditions']);
        END IF;
    END IF;

    SELECT t->>'readable_id' INTO v_dup
    FROM jsonb_array_elements(v_tasks || CASE WHEN v_onf IS NULL THEN '[]' ELSE jsonb_build_array(v_onf) END) t
    GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name, format('task "%s" is declared twice', v_dup)]);
    END IF;

    SELECT t->>'readable_id' AS task, p AS parent INTO v_missing
    FROM jsonb_array_elements(v_tasks) WITH ORDINALITY AS x(t, ord)
    CROSS JOIN LATERAL jsonb_array_elements_text(t->'parents') p
    WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_tasks) o WHERE o->>'readable_id' = p)
    ORDER BY ord LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('unknown_workflow_task', ARRAY[v_name, v_missing.parent,
            format('Task "%s" lists it as a parent.', v_missing.task)]);
    END IF;

    -- Tasks on a cycle are those that can reach themselves through parent -> child edges.
    WITH RECURSIVE edge AS (
        SELECT p AS parent, t->>'readable_id' AS child
        FROM jsonb_array_elements(v_tasks) t CROSS JOIN LATERAL jsonb_array_elements_text(t->'parents') p
    ), reach(src, dst) AS (
        SELECT parent, child FROM edge
        UNION
        SELECT r.src, e.child FROM reach r JOIN edge e ON e.parent = r.dst
    )
    SELECT array_agg(DISTINCT src ORDER BY src) INTO v_cycle FROM reach WHERE src = dst;
    IF v_cycle IS NOT NULL THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name,
            format('its tasks form a cycle (through %s)',
                   (SELECT string_agg(format('"%s"', c), ', ' ORDER BY c) FROM unnest(v_cycle) c))]);
    END IF;

    -- Workflow-level concurrency: `concurrency` (one) and `concurrency_arr` (a list) of the proto, in that order.
    FOR v_item IN
        SELECT e FROM (SELECT 1 AS o, e FROM jsonb_array_elements(CASE jsonb_typeof(p_def->'concurrency')
                                                                  WHEN 'array' THEN p_def->'concurrency'
                                                                  WHEN 'object' THEN jsonb_build_array(p_def->'concurrency')
                                                                  ELSE '[]' END) e
                       UNION ALL
                       SELECT 2, e FROM jsonb_array_elements(CASE jsonb_typeof(p_def->'concurrency_arr')
                                                             WHEN 'array' THEN p_def->'concurrency_arr'
                                                             ELSE '[]' END) e) x
    LOOP
        v_conc := v_conc || jsonb_build_array(hatchet._normalise_concurrency(v_name, 'workflow', v_item));
    END LOOP;

    FOR v_item IN SELECT e FROM jsonb_array_elements(coalesce(nullif(p_def->'default_filters', 'null'), '[]')) e LOOP
        IF coalesce(v_item->>'expression', '') = '' OR coalesce(v_item->>'scope', '') = '' THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name,
                'each default filter needs an expression and a scope']);
        END IF;
        PERFORM hatchet.cel_check(v_item->>'expression');
        v_filters := v_filters || jsonb_build_array(jsonb_build_object(
            'expression', v_item->>'expression', 'scope', v_item->>'scope',
            'payload', coalesce(hatchet._json_object(v_item->'payload', 'default filter payload', v_name), '{}')));
    END LOOP;

    v_prio := coalesce(hatchet._json_int(p_def->'default_priority', 'default_priority', v_name), 1);
    IF v_prio NOT BETWEEN 1 AND 3 THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name,
            format('default_priority must be between 1 and 3, not %s', v_prio)]);
    END IF;

    v_crons := hatchet._json_texts(p_def->'cron_triggers', 'cron_triggers', v_name);
    FOREACH v_cron IN ARRAY v_crons LOOP
        PERFORM hatchet.check_cron(v_cron);
    END LOOP;

    -- Workflow-level idempotency (Hatchet's IdempotencyConfig): the CEL expression giving a run's key, how long a run
    -- holds it, and whether a finished run gives it back at once (STATUS) or only time does (TTL, the default).
    IF jsonb_typeof(p_def->'idempotency') = 'object' THEN
        v_idem := p_def->'idempotency';
        IF coalesce(v_idem->>'expression', '') = '' THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name, 'idempotency needs a key expression']);
        END IF;
        PERFORM hatchet.cel_check(v_idem->>'expression');
        IF jsonb_typeof(v_idem->'ttl_ms') IS DISTINCT FROM 'number' OR (v_idem->>'ttl_ms') !~ '^[0-9]{1,15}$'
           OR (v_idem->>'ttl_ms')::bigint = 0 THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name,
                format('idempotency ttl_ms must be a positive number of milliseconds, not %s',
                       coalesce(v_idem->'ttl_ms', 'null'))]);
        END IF;
        v_idem := jsonb_build_object('expression', v_idem->>'expression', 'ttl_ms', (v_idem->>'ttl_ms')::bigint,
            'method', coalesce(hatchet._enum_name(v_idem->'method', ARRAY['TTL', 'STATUS'], 'idempotency method',
                                                  v_name), 'TTL'));
    END IF;

    RETURN jsonb_strip_nulls(jsonb_build_object(
        'name', v_name,
        'version', coalesce(p_def->>'version', ''),
        'description', nullif(p_def->>'description', ''),
        'event_triggers', to_jsonb(hatchet._json_texts(p_def->'event_triggers', 'event_triggers', v_name)),
        'cron_triggers', to_jsonb(v_crons),
        'cron_input', hatchet._json_object(p_def->'cron_input', 'cron_input', v_name),
        'tasks', v_tasks,
        'on_failure_task', v_onf,
        'concurrency', v_conc,
        'sticky', hatchet._enum_name(p_def->'sticky', ARRAY['SOFT', 'HARD'], 'sticky', v_name),
        'default_priority', v_prio,
        'default_filters', v_filters,
        'idempotency', v_idem));
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Registration
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet.register_workflow(definition jsonb, tenant_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant   uuid := hatchet._tenant(register_workflow.tenant_id);
    v_def      jsonb;
    v_name     text;
    v_wf       bigint;
    v_latest   record;
    v_checksum text;
    v_version  bigint;
    v_ext      uuid;
    v_task     jsonb;
    v_slot     record;
    v_crons    text[];
BEGIN
    IF register_workflow.definition IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['definition']);
    END IF;
    PERFORM hatchet._check_payload('definition', register_workflow.definition);
    v_def := hatchet._normalise_workflow(register_workflow.definition);
    v_name := v_def->>'name';

    -- Concurrent registrations of one workflow queue up on its row, so versions are created one at a time.
    INSERT INTO hatchet.workflows (tenant_id, external_id, name) VALUES (p_tenant, hatchet.gen_id(), v_name)
    ON CONFLICT ON CONSTRAINT workflows_name_key DO NOTHING;
    SELECT w.id INTO v_wf FROM hatchet.workflows w WHERE w.tenant_id = p_tenant AND w.name = v_name FOR UPDATE;

    SELECT v.id, v.external_id, v.definition INTO v_latest
    FROM hatchet.workflow_versions v WHERE v.tenant_id = p_tenant AND v.workflow_id = v_wf
    ORDER BY v.id DESC LIMIT 1;
    IF FOUND AND v_latest.definition = v_def THEN
        RETURN v_latest.external_id;
    END IF;

    -- Going back to an older definition makes a new (latest) version; its checksum must still be unique.
    v_checksum := md5(v_def::text);
    IF EXISTS (SELECT 1 FROM hatchet.workflow_versions v
               WHERE v.tenant_id = p_tenant AND v.workflow_id = v_wf AND v.checksum = v_checksum) THEN
        v_checksum := md5(v_def::text || ':' || v_latest.id);
    END IF;
    v_ext := hatchet.gen_id();
    INSERT INTO hatchet.workflow_versions (tenant_id, external_id, workflow_id, version, checksum, definition, sticky,
                                           default_priority, concurrency, event_triggers, cron_triggers, cron_input)
    VALUES (p_tenant, v_ext, v_wf, v_def->>'version', v_checksum, v_def,
            (v_def->>'sticky')::hatchet.sticky_strategy, (v_def->>'default_priority')::smallint,
            coalesce(v_def->'concurrency', '[]'),
            ARRAY(SELECT jsonb_array_elements_text(coalesce(v_def->'event_triggers', '[]'))),
            ARRAY(SELECT jsonb_array_elements_text(coalesce(v_def->'cron_triggers', '[]'))),
            v_def->'cron_input')
    RETURNING id INTO v_version;

    FOR v_task IN
        SELECT t || jsonb_build_object('is_on_failure', ord > jsonb_array_length(v_def->'tasks'))
        FROM jsonb_array_elements((v_def->'tasks') || CASE WHEN v_def ? 'on_failure_task'
                                                          THEN jsonb_build_array(v_def->'on_failure_task')
                                                          ELSE '[]' END)
             WITH ORDINALITY AS x(t, ord)
        ORDER BY ord
    LOOP
        -- A task holds one kind of slot: the first slot type it requests (by name).
        SELECT s.key, (s.value #>> '{}')::numeric::integer AS units INTO v_slot
        FROM jsonb_each(v_task->'slot_requests') s ORDER BY s.key LIMIT 1;
        INSERT INTO hatchet.task_definitions (tenant_id, workflow_version_id, readable_id, action, parents,
                                              is_on_failure, is_durable, retries, backoff_factor, backoff_max_seconds,
                                              execution_timeout, schedule_timeout, concurrency, rate_limits,
                                              worker_labels, conditions, slot_type, slot_units, batch)
        VALUES (p_tenant, v_version, v_task->>'readable_id', v_task->>'action',
                ARRAY(SELECT jsonb_array_elements_text(v_task->'parents')), (v_task->>'is_on_failure')::boolean,
                (v_task->>'is_durable')::boolean, (v_task->>'retries')::integer,
                (v_task->>'backoff_factor')::float8, (v_task->>'backoff_max_seconds')::integer,
                hatchet.parse_duration(v_task->>'timeout'), hatchet.parse_duration(v_task->>'schedule_timeout'),
                coalesce(v_task->'concurrency', '[]'), coalesce(v_task->'rate_limits', '[]'),
                coalesce(v_task->'worker_labels', '{}'), coalesce(v_task->'conditions', '{}'),
                v_slot.key, v_slot.units, v_task->'batch');
    END LOOP;
    -- A version registered while the workflow is paused is paused too (its new queues held like the others).
    INSERT INTO hatchet.paused_queues (tenant_id, queue, workflow_id)
    SELECT p_tenant, d.action, v_wf FROM hatchet.task_definitions d
    JOIN hatchet.workflows w ON w.tenant_id = p_tenant AND w.id = v_wf
    WHERE d.tenant_id = p_tenant AND d.workflow_version_id = v_version AND w.is_paused
    ON CONFLICT ON CONSTRAINT paused_queues_pkey DO NOTHING;

    -- Declared crons follow the latest definition: kept (with their next tick) while still declared, so
    -- re-registering on every worker start neither skips nor repeats a tick; removed once no longer declared.
    v_crons := ARRAY(SELECT jsonb_array_elements_text(coalesce(v_def->'cron_triggers', '[]')));
    DELETE FROM hatchet.crons c
    WHERE c.tenant_id = p_tenant AND c.workflow_id = v_wf AND c.method = 'DECLARED' AND NOT (c.expression = ANY (v_crons));
    UPDATE hatchet.crons c SET input = coalesce(v_def->'cron_input', '{}')
    WHERE c.tenant_id = p_tenant AND c.workflow_id = v_wf AND c.method = 'DECLARED';
    INSERT INTO hatchet.crons (tenant_id, id, workflow_id, name, expression, input, method, next_tick_at)
    SELECT p_tenant, hatchet.gen_id(), v_wf, e, e, coalesce(v_def->'cron_input', '{}'), 'DECLARED',
           coalesce(hatchet.cron_next(e, clock_timestamp()), 'infinity')
    FROM (SELECT DISTINCT e FROM unnest(v_crons) e) x
    ON CONFLICT ON CONSTRAINT crons_name_key DO NOTHING;

    -- Declarative filters are replaced by every registration (Hatchet's default_filters).
    DELETE FROM hatchet.event_filters f
    WHERE f.tenant_id = p_tenant AND f.workflow_id = v_wf AND f.is_declarative;
    INSERT INTO hatchet.event_filters (tenant_id, id, workflow_id, scope, expression, payload, is_declarative)
    SELECT p_tenant, hatchet.gen_id(), v_wf, f->>'scope', f->>'expression', f->'payload', true
    FROM jsonb_array_elements(coalesce(v_def->'default_filters', '[]')) f
    ON CONFLICT DO NOTHING;
    RETURN v_ext;
END
$$;
COMMENT ON FUNCTION hatchet.register_workflow(jsonb, uuid) IS
    'register a workflow version (Hatchet''s CreateWorkflowVersionRequest as JSON); the same definition again is a no-op';

-- The latest version of a workflow by name, or an error naming it.
CREATE FUNCTION hatchet._latest_version(p_tenant uuid, p_workflow text,
                                        OUT workflow_id bigint, OUT version_id bigint, OUT default_priority integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_workflow IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['workflow']);
    END IF;
    SELECT w.id, v.id, v.default_priority INTO workflow_id, version_id, default_priority
    FROM hatchet.workflows w
    CROSS JOIN LATERAL (SELECT x.id, x.default_priority FROM hatchet.workflow_versions x
                        WHERE x.tenant_id = w.tenant_id AND x.workflow_id = w.id ORDER BY x.id DESC LIMIT 1) v
    WHERE w.tenant_id = p_tenant AND w.name = p_workflow;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['workflow', p_workflow]);
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Flow-control options of a task definition
-- ---------------------------------------------------------------------------------------------------------------------

-- Hatchet's enum numbers (proto ConcurrencyLimitStrategy) or names, to our three strategies.
CREATE FUNCTION hatchet._strategy_name(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE coalesce(p #>> '{}', '0')
        WHEN '0' THEN 'CANCEL_IN_PROGRESS' WHEN 'CANCEL_IN_PROGRESS' THEN 'CANCEL_IN_PROGRESS'
        WHEN '1' THEN 'CANCEL_NEWEST' WHEN 'DROP_NEWEST' THEN 'CANCEL_NEWEST'
        WHEN '2' THEN 'GROUP_ROUND_ROBIN' WHEN 'QUEUE_NEWEST' THEN 'GROUP_ROUND_ROBIN'
        WHEN '3' THEN 'GROUP_ROUND_ROBIN' WHEN 'GROUP_ROUND_ROBIN' THEN 'GROUP_ROUND_ROBIN'
        WHEN '4' THEN 'CANCEL_NEWEST' WHEN 'CANCEL_NEWEST' THEN 'CANCEL_NEWEST'
    END
$$;

-- Proto RateLimitDuration numbers or names to a window name put_rate_limit understands.
CREATE FUNCTION hatchet._duration_name(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE coalesce(p #>> '{}', '1')
        WHEN '0' THEN 'SECOND' WHEN '1' THEN 'MINUTE' WHEN '2' THEN 'HOUR' WHEN '3' THEN 'DAY'
        WHEN '4' THEN 'WEEK' WHEN '5' THEN 'MONTH' WHEN '6' THEN 'YEAR'
        ELSE upper(p #>> '{}')
    END
$$;

-- Evaluates a task definition's flow control for one new task (CEL over input and additional_metadata):
-- {concurrency: [gates], rate_limits: [{key, units}], desired_labels, sticky, slot_type, slot_units} or
-- {error: reason} when an expression fails, in which case the task is created FAILED with that reason.
CREATE FUNCTION hatchet._definition_flow(p_tenant uuid, p_definition_id bigint, p_input jsonb, p_metadata jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_def   record;
    -- A workflow task's input is Hatchet's action payload {"input": <run input>, "parents": {...}}: CEL sees the run
    -- input as `input` and parent outputs as `parents`, as in Hatchet.
    v_vars  jsonb := jsonb_build_object('input', coalesce(p_input -> 'input', p_input), 'additional_metadata', p_metadata,
                                        'parents', coalesce(p_input -> 'parents', '{}'));
    v_gates jsonb := '[]';
    v_rls   jsonb := '[]';
    v_c     jsonb;
    v_r     jsonb;
    v_res   jsonb;
    v_key   text;
    v_units integer;
    v_limit integer;
    v_labels jsonb := '{}';
    v_l     record;
BEGIN
    SELECT d.action, d.concurrency, d.rate_limits, d.worker_labels, d.slot_type, d.slot_units, v.concurrency AS wf_concurrency,
           v.sticky, v.workflow_id, d.batch
    INTO v_def
    FROM hatchet.task_definitions d
    JOIN hatchet.workflow_versions v ON v.tenant_id = d.tenant_id AND v.id = d.workflow_version_id
    WHERE d.tenant_id = p_tenant AND d.id = p_definition_id;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['task definition', p_definition_id::text]);
    END IF;

    -- Workflow-level gates first (they count runs: the run holds the slot), then the task's own, in declared order.
    FOR v_c IN SELECT x FROM jsonb_array_elements(v_def.wf_concurrency) AS x LOOP
        v_res := hatchet.cel_try(v_c ->> 'expression', v_vars);
        IF v_res ? 'error' OR jsonb_typeof(v_res -> 'value') <> 'string' THEN
            RETURN jsonb_build_object('error', format('concurrency key expression "%s" failed: %s',
                v_c ->> 'expression', coalesce(v_res ->> 'error', 'it must evaluate to a string')));
        END IF;
        v_gates := v_gates || jsonb_build_object('scope', 'workflow:' || v_def.workflow_id, 'key', v_res ->> 'value',
            'max_runs', coalesce((v_c ->> 'max_runs')::integer, 1),
            'strategy', hatchet._strategy_name(coalesce(v_c -> 'limit_strategy', v_c -> 'strategy')), 'per_run', true);
    END LOOP;
    FOR v_c IN SELECT x FROM jsonb_array_elements(v_def.concurrency) AS x LOOP
        v_res := hatchet.cel_try(v_c ->> 'expression', v_vars);
        IF v_res ? 'error' OR jsonb_typeof(v_res -> 'value') <> 'string' THEN
            RETURN jsonb_build_object('error', format('concurrency key expression "%s" failed: %s',
                v_c ->> 'expression', coalesce(v_res ->> 'error', 'it must evaluate to a string')));
        END IF;
        v_gates := v_gates || jsonb_build_object('scope', v_def.action, 'key', v_res ->> 'value',
            'max_runs', coalesce((v_c ->> 'max_runs')::integer, 1),
            'strategy', hatchet._strategy_name(coalesce(v_c -> 'limit_strategy', v_c -> 'strategy')));
    END LOOP;

    -- Rate limits: static keys, or keys / units / limits from CEL (dynamic limits are created on first use).
    FOR v_r IN SELECT x FROM jsonb_array_elements(v_def.rate_limits) AS x LOOP
        IF v_r ? 'key_expr' AND coalesce(v_r ->> 'key_expr', '') <> '' THEN
            v_res := hatchet.cel_try(v_r ->> 'key_expr', v_vars);
            IF v_res ? 'error' THEN
                RETURN jsonb_build_object('error', format('rate limit key expression "%s" failed: %s',
                                                          v_r ->> 'key_expr', v_res ->> 'error'));
            END IF;
            v_key := v_res ->> 'value';
        ELSE
            v_key := v_r ->> 'key';
        END IF;
        IF coalesce(v_r ->> 'units_expr', '') <> '' THEN
            v_res := hatchet.cel_try(v_r ->> 'units_expr', v_vars);
            IF v_res ? 'error' OR jsonb_typeof(v_res -> 'value') <> 'number' THEN
                RETURN jsonb_build_object('error', format('rate limit units expression "%s" failed: %s',
                    v_r ->> 'units_expr', coalesce(v_res ->> 'error', 'it must evaluate to a number')));
            END IF;
            v_units := (v_res ->> 'value')::numeric::integer;
        ELSE
            v_units := coalesce((v_r ->> 'units')::integer, 1);
        END IF;
        -- A dynamic limit only for a dynamic key, and only a positive one: the SDK sends limit_values_expr "-1" for
        -- static keys, whose limit comes from put_rate_limit.
        IF coalesce(v_r ->> 'key_expr', '') <> ''
           AND coalesce(v_r ->> 'limit_values_expr', v_r ->> 'limit_expr', '') NOT IN ('', '-1') THEN
            v_res := hatchet.cel_try(coalesce(v_r ->> 'limit_values_expr', v_r ->> 'limit_expr'), v_vars);
            IF v_res ? 'error' OR jsonb_typeof(v_res -> 'value') <> 'number' THEN
                RETURN jsonb_build_object('error', format('rate limit limit expression failed: %s',
                    coalesce(v_res ->> 'error', 'it must evaluate to a number')));
            END IF;
            v_limit := (v_res ->> 'value')::numeric::integer;
            IF v_limit >= 1 AND NOT EXISTS (SELECT 1 FROM hatchet.rate_limits r WHERE r.tenant_id = p_tenant AND r.key = v_key
                                                               AND r.limit_value = v_limit) THEN
                PERFORM hatchet.put_rate_limit(v_key, v_limit, hatchet._duration_name(v_r -> 'duration'), p_tenant);
            END IF;
        END IF;
        v_rls := v_rls || jsonb_build_object('key', v_key, 'units', v_units);
    END LOOP;

    -- Desired worker labels, normalised from the proto shape {str_value | int_value, required, comparator, weight}.
    FOR v_l IN SELECT k, v FROM jsonb_each(coalesce(v_def.worker_labels, '{}')) AS e(k, v) LOOP
        v_labels := v_labels || jsonb_build_object(v_l.k, jsonb_build_object(
            'value', coalesce(v_l.v -> 'int_value', v_l.v -> 'str_value', v_l.v -> 'value'),
            'comparator', coalesce(v_l.v ->> 'comparator', 'EQUAL'),
            'required', coalesce((v_l.v ->> 'required')::boolean, false),
            'weight', coalesce((v_l.v ->> 'weight')::integer, 100)));
    END LOOP;

    -- A batch task's group key: members are batched only with others of the same key.
    IF v_def.batch IS NOT NULL THEN
        v_key := '';
        IF v_def.batch ? 'group_key' THEN
            v_res := hatchet.cel_try(v_def.batch ->> 'group_key', v_vars);
            IF v_res ? 'error' OR jsonb_typeof(v_res -> 'value') <> 'string' THEN
                RETURN jsonb_build_object('error', format('failed to parse batch group key expression "%s": %s',
                    v_def.batch ->> 'group_key', coalesce(v_res ->> 'error', 'it must evaluate to a string')));
            END IF;
            v_key := v_res ->> 'value';
        END IF;
    END IF;

    RETURN jsonb_strip_nulls(jsonb_build_object(
        'batch_key', CASE WHEN v_def.batch IS NOT NULL THEN v_key END,
        'concurrency', CASE WHEN jsonb_array_length(v_gates) > 0 THEN v_gates END,
        'rate_limits', CASE WHEN jsonb_array_length(v_rls) > 0 THEN v_rls END,
        'desired_labels', CASE WHEN v_labels <> '{}' THEN v_labels END,
        'sticky', v_def.sticky, 'slot_type', v_def.slot_type, 'slot_units', v_def.slot_units));
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Reads
-- ---------------------------------------------------------------------------------------------------------------------

-- Workflows of a tenant by name (exact) or external id, or all, with their latest version.
CREATE FUNCTION hatchet.list_workflows(workflow_name text DEFAULT NULL, workflow_id uuid DEFAULT NULL,
                                       tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, name text, is_paused boolean, created_at timestamptz, version_id uuid, version text,
               version_created_at timestamptz, event_triggers text[], cron_triggers text[], description text,
               sticky text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(list_workflows.tenant_id);
BEGIN
    RETURN QUERY
    SELECT w.external_id, w.name, w.is_paused, w.created_at, v.external_id, v.version, v.created_at,
           coalesce(v.event_triggers, '{}'), coalesce(v.cron_triggers, '{}'), v.definition ->> 'description',
           v.sticky::text
    FROM hatchet.workflows w
    LEFT JOIN LATERAL (SELECT x.* FROM hatchet.workflow_versions x
                       WHERE x.tenant_id = w.tenant_id AND x.workflow_id = w.id ORDER BY x.id DESC LIMIT 1) v ON true
    WHERE w.tenant_id = p_tenant
      AND (list_workflows.workflow_name IS NULL OR w.name = list_workflows.workflow_name)
      AND (list_workflows.workflow_id IS NULL OR w.external_id = list_workflows.workflow_id)
    ORDER BY w.name;
END
$$;
COMMENT ON FUNCTION hatchet.list_workflows(text, uuid, uuid) IS
    'workflows (all, by exact name or by id) with their latest version''s id, label, triggers and sticky strategy';

-- ---------------------------------------------------------------------------------------------------------------------
-- Pause, unpause, delete
-- ---------------------------------------------------------------------------------------------------------------------

-- The workflow with this external id, locked; an unknown id is 42704.
CREATE FUNCTION hatchet._workflow_for_update(p_tenant uuid, p_workflow uuid) RETURNS hatchet.workflows
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w hatchet.workflows;
BEGIN
    IF p_workflow IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['workflow_id']);
    END IF;
    SELECT x.* INTO w FROM hatchet.workflows x WHERE x.tenant_id = p_tenant AND x.external_id = p_workflow FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['workflow', p_workflow::text]);
    END IF;
    RETURN w;
END
$$;

-- Pauses a workflow (Hatchet's workflow pause): its runs are still created, but nothing of it is assigned to a worker
-- until it is unpaused; attempts held longer than queue_ttl are cancelled (by the maintenance pass), and cron ticks
-- and one-off schedules either queue their run like any other (QUEUE) or create none (DROP). Pausing a paused
-- workflow replaces its settings (the TTL still counts from the first pause). Returns the workflow's external id.
CREATE FUNCTION hatchet.pause_workflow(
    workflow_id        uuid,
    queue_ttl          interval DEFAULT NULL,
    cron_behavior      text     DEFAULT 'QUEUE',
    scheduled_behavior text     DEFAULT 'QUEUE',
    tenant_id          uuid     DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(pause_workflow.tenant_id);
    w        hatchet.workflows;
BEGIN
    IF pause_workflow.queue_ttl <= interval '0' THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('queue_ttl must be positive, not %s', pause_workflow.queue_ttl)]);
    END IF;
    IF coalesce(upper(pause_workflow.cron_behavior), '') NOT IN ('QUEUE', 'DROP')
       OR coalesce(upper(pause_workflow.scheduled_behavior), '') NOT IN ('QUEUE', 'DROP') THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('cron_behavior and scheduled_behavior must be QUEUE or DROP, not %s and %s',
                         coalesce(pause_workflow.cron_behavior, 'null'),
                         coalesce(pause_workflow.scheduled_behavior, 'null'))]);
    END IF;
    w := hatchet._workflow_for_update(p_tenant, pause_workflow.workflow_id);
    UPDATE hatchet.workflows x
    SET is_paused = true, paused_at = coalesce(x.paused_at, clock_timestamp()),
        paused_queue_ttl = pause_workflow.queue_ttl, paused_cron_behavior = upper(pause_workflow.cron_behavior),
        paused_scheduled_behavior = upper(pause_workflow.scheduled_behavior)
    WHERE x.tenant_id = p_tenant AND x.id = w.id;
    INSERT INTO hatchet.paused_queues (tenant_id, queue, workflow_id)
    SELECT DISTINCT p_tenant, d.action, w.id
    FROM hatchet.workflow_versions v
    JOIN hatchet.task_definitions d ON d.tenant_id = v.tenant_id AND d.workflow_version_id = v.id
    WHERE v.tenant_id = p_tenant AND v.workflow_id = w.id
    ON CONFLICT ON CONSTRAINT paused_queues_pkey DO NOTHING;
    RETURN w.external_id;
END
$$;
COMMENT ON FUNCTION hatchet.pause_workflow(uuid, interval, text, text, uuid) IS
    'pause a workflow: runs are created but not assigned until unpaused; queued attempts older than queue_ttl are cancelled; crons and schedules QUEUE or DROP';

-- Unpauses a workflow: its held attempts are assigned again at once. Unpausing a workflow that is not paused does
-- nothing. Returns the workflow's external id.
CREATE FUNCTION hatchet.unpause_workflow(workflow_id uuid, tenant_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(unpause_workflow.tenant_id);
    w        hatchet.workflows;
    v_queue  text;
BEGIN
    w := hatchet._workflow_for_update(p_tenant, unpause_workflow.workflow_id);
    UPDATE hatchet.workflows x
    SET is_paused = false, paused_at = NULL, paused_queue_ttl = NULL, paused_cron_behavior = NULL,
        paused_scheduled_behavior = NULL
    WHERE x.tenant_id = p_tenant AND x.id = w.id;
    FOR v_queue IN
        DELETE FROM hatchet.paused_queues q WHERE q.tenant_id = p_tenant AND q.workflow_id = w.id RETURNING q.queue
    LOOP
        PERFORM hatchet._ready(v_queue);
    END LOOP;
    RETURN w.external_id;
END
$$;
COMMENT ON FUNCTION hatchet.unpause_workflow(uuid, uuid) IS 'unpause a workflow: its held attempts are assigned again';

-- Whether a cron tick (p_kind 'cron') or a one-off schedule ('schedule') of this workflow creates no run because the
-- workflow is paused with DROP for that kind.
CREATE FUNCTION hatchet._paused_drops(p_tenant uuid, p_workflow bigint, p_kind text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT w.is_paused AND CASE p_kind WHEN 'cron' THEN w.paused_cron_behavior
                                                        ELSE w.paused_scheduled_behavior END = 'DROP'
                     FROM hatchet.workflows w WHERE w.tenant_id = p_tenant AND w.id = p_workflow), false)
$$;

-- Deletes a workflow: its versions and task definitions, crons, schedules not yet fired and event filters. Runs
-- already finished stay in the history. A workflow with work in flight (queued, running or waiting tasks) is refused
-- with 55000: cancel its runs first. Returns the workflow's external id.
CREATE FUNCTION hatchet.delete_workflow(workflow_id uuid, tenant_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(delete_workflow.tenant_id);
    w        hatchet.workflows;
    v_defs   bigint[];
BEGIN
    w := hatchet._workflow_for_update(p_tenant, delete_workflow.workflow_id);
    v_defs := ARRAY(SELECT d.id FROM hatchet.workflow_versions v
                    JOIN hatchet.task_definitions d ON d.tenant_id = v.tenant_id AND d.workflow_version_id = v.id
                    WHERE v.tenant_id = p_tenant AND v.workflow_id = w.id);
    IF EXISTS (SELECT 1 FROM hatchet.ready_queue x WHERE x.tenant_id = p_tenant AND x.task_definition_id = ANY (v_defs))
       OR EXISTS (SELECT 1 FROM hatchet.delayed_queue x
                  WHERE x.tenant_id = p_tenant AND x.task_definition_id = ANY (v_defs))
       OR EXISTS (SELECT 1 FROM hatchet.concurrency_queue x
                  WHERE x.tenant_id = p_tenant AND x.task_definition_id = ANY (v_defs))
       OR EXISTS (SELECT 1 FROM hatchet.running x WHERE x.tenant_id = p_tenant AND x.task_definition_id = ANY (v_defs))
       OR EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.task_definition_id = ANY (v_defs))
    THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('workflow "%s" has runs in progress', w.name),
            HINT = 'Cancel its runs (hatchet.cancel_run) before deleting it.';
    END IF;
    DELETE FROM hatchet.crons c WHERE c.tenant_id = p_tenant AND c.workflow_id = w.id;
    DELETE FROM hatchet.scheduled_runs s WHERE s.tenant_id = p_tenant AND s.workflow_id = w.id;
    DELETE FROM hatchet.event_filters f WHERE f.tenant_id = p_tenant AND f.workflow_id = w.id;
    DELETE FROM hatchet.workflows x WHERE x.tenant_id = p_tenant AND x.id = w.id;
    RETURN w.external_id;
END
$$;
COMMENT ON FUNCTION hatchet.delete_workflow(uuid, uuid) IS
    'delete a workflow with its versions, crons, schedules and filters (refused while it has work in progress); finished runs stay';
