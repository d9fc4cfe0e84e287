-- pg_hatchet 0.2.0 -> 0.3.0 (applied by ALTER EXTENSION pg_hatchet UPDATE TO '0.3.0').
--
-- What 0.3.0 changes in the installed SQL, by topic (each section says what it changes). Each definition below is the
-- same text as in sql/*.sql, so an updated 0.2.0 and a fresh 0.3.0 have the same catalog (tests/upgrade).

\echo Use "ALTER EXTENSION pg_hatchet UPDATE TO '0.3.0'" to load this file. \quit

-- =====================================================================================================================
-- 1. Hardening: CEL budget, maintenance isolation, quotas (issue 15)
-- =====================================================================================================================


-- =====================================================================================================================
-- 2. Fault recovery (issue 16)
-- =====================================================================================================================


-- =====================================================================================================================
-- 3. SDK parity (issue 20)
-- =====================================================================================================================

-- Workflow-level idempotency keys (Hatchet's IdempotencyConfig): the table of claimed keys, the definition keeps its
-- idempotency config, runs claim their key when created and STATUS keys are given back when their run finishes; an
-- event whose run is refused for its key creates no run.
CREATE TABLE hatchet.run_idempotency_keys (
    tenant_id   uuid        NOT NULL,
    key         text        NOT NULL,
    run_id      uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    -- method STATUS: the key is also given back as soon as its run finishes (TTL: only by expiring)
    until_done  boolean     NOT NULL,
    CONSTRAINT run_idempotency_keys_pkey PRIMARY KEY (tenant_id, key)
);
CREATE INDEX run_idempotency_keys_run_idx ON hatchet.run_idempotency_keys (tenant_id, run_id);
CREATE INDEX run_idempotency_keys_expires_idx ON hatchet.run_idempotency_keys (tenant_id, expires_at);
COMMENT ON TABLE hatchet.run_idempotency_keys IS
    'idempotency keys claimed by workflow runs (a workflow''s idempotency config); a trigger whose key is held is refused';

CREATE OR REPLACE FUNCTION hatchet._normalise_workflow(p_def jsonb) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION hatchet._claim_run_key(p_tenant uuid, p_config jsonb, p_input jsonb, p_metadata jsonb, p_run uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now    timestamptz := clock_timestamp();
    v_res    jsonb;
    v_key    text;
    v_holder uuid;
BEGIN
    v_res := hatchet.cel_try(p_config->>'expression',
                             jsonb_build_object('input', p_input, 'additional_metadata', p_metadata));
    IF v_res ? 'error' OR jsonb_typeof(v_res->'value') IS DISTINCT FROM 'string' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('idempotency key expression "%s" failed: %s',
            p_config->>'expression', coalesce(v_res->>'error', 'it must evaluate to a string'))]);
    END IF;
    v_key := v_res->>'value';
    DELETE FROM hatchet.run_idempotency_keys k
    WHERE k.tenant_id = p_tenant AND (k.tenant_id, k.key) IN (
        SELECT x.tenant_id, x.key FROM hatchet.run_idempotency_keys x
        WHERE x.tenant_id = p_tenant AND x.expires_at <= v_now AND x.key <> v_key
        ORDER BY x.expires_at LIMIT 10 FOR UPDATE SKIP LOCKED);
    -- A held key is locked but left alone (the WHERE fails), so RETURNING gives nothing: then it is a collision.
    INSERT INTO hatchet.run_idempotency_keys AS k (tenant_id, key, run_id, expires_at, until_done)
    VALUES (p_tenant, v_key, p_run, v_now + make_interval(secs => (p_config->>'ttl_ms')::bigint / 1000.0),
            p_config->>'method' = 'STATUS')
    ON CONFLICT ON CONSTRAINT run_idempotency_keys_pkey DO UPDATE
    SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at, until_done = EXCLUDED.until_done
    WHERE k.expires_at <= v_now
    RETURNING k.run_id INTO v_holder;
    IF v_holder IS NULL THEN
        SELECT k.run_id INTO v_holder FROM hatchet.run_idempotency_keys k
        WHERE k.tenant_id = p_tenant AND k.key = v_key;
        PERFORM hatchet.raise_error('idempotency_collision', ARRAY[v_key, v_holder::text]);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION hatchet._release_run_keys(p_tenant uuid, p_runs uuid[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM hatchet.run_idempotency_keys k
    WHERE k.tenant_id = p_tenant AND k.run_id = ANY (p_runs) AND k.until_done
      AND NOT EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = k.run_id)
      AND NOT EXISTS (
          SELECT 1 FROM hatchet.tasks t
          WHERE t.tenant_id = p_tenant AND t.run_id = k.run_id AND t.inserted_at >= hatchet.uuid_time(k.run_id)
            AND (EXISTS (SELECT 1 FROM hatchet.ready_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                 OR EXISTS (SELECT 1 FROM hatchet.running q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                 OR EXISTS (SELECT 1 FROM hatchet.delayed_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                 OR EXISTS (SELECT 1 FROM hatchet.concurrency_queue q
                            WHERE q.tenant_id = p_tenant AND q.task_id = t.id)))
$$;

CREATE OR REPLACE FUNCTION hatchet._create_run(
    p_tenant uuid, p_version bigint, p_input jsonb, p_metadata jsonb, p_priority integer, p_triggered_by text,
    p_triggers jsonb DEFAULT NULL, p_parent_task_id uuid DEFAULT NULL, p_child_index integer DEFAULT NULL,
    p_child_key text DEFAULT NULL, p_desired_worker_id uuid DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id     uuid := hatchet.gen_id();
    v_run    hatchet.runs;
    v_def    hatchet.task_definitions;
    v_single boolean;
    v_now    timestamptz := clock_timestamp();
    v_place  jsonb := '{}';
    v_idem   jsonb;
BEGIN
    SELECT v.definition->'idempotency' INTO v_idem
    FROM hatchet.workflow_versions v WHERE v.tenant_id = p_tenant AND v.id = p_version;
    IF v_idem IS NOT NULL THEN
        PERFORM hatchet._claim_run_key(p_tenant, v_idem, p_input, p_metadata, v_id);
    END IF;
    INSERT INTO hatchet.runs (tenant_id, inserted_at, id, workflow_version_id, input, additional_metadata, priority,
                              parent_task_id, child_index, child_key, triggered_by)
    SELECT p_tenant, hatchet.uuid_time(v_id), v_id, p_version, p_input, p_metadata,
           coalesce(p_priority, v.default_priority), p_parent_task_id, p_child_index, p_child_key, p_triggered_by
    FROM hatchet.workflow_versions v WHERE v.tenant_id = p_tenant AND v.id = p_version
    RETURNING * INTO v_run;
    -- Root tasks go to the worker the trigger asked for (SOFT unless the workflow is HARD sticky); later tasks
    -- decide from the first task when they are queued (_run_placement).
    IF p_desired_worker_id IS NOT NULL THEN
        v_place := jsonb_build_object('desired_worker_id', p_desired_worker_id, 'sticky',
            coalesce((SELECT v.sticky FROM hatchet.workflow_versions v
                      WHERE v.tenant_id = p_tenant AND v.id = p_version), 'SOFT'::hatchet.sticky_strategy));
    END IF;
    SELECT count(*) = 1 INTO v_single
    FROM hatchet.task_definitions d WHERE d.tenant_id = p_tenant AND d.workflow_version_id = p_version;
    -- Every pending match first, then the root tasks: a root task can end while it is queued (cancelled by a
    -- CANCEL_NEWEST key, failed by a key expression), and its outcome must reach the matches of its children.
    FOR v_def IN
        SELECT d.* FROM hatchet.task_definitions d
        WHERE d.tenant_id = p_tenant AND d.workflow_version_id = p_version
        ORDER BY (NOT d.is_on_failure AND cardinality(d.parents) = 0 AND d.conditions = '{}'), d.id
    LOOP
        IF v_def.is_on_failure THEN
            PERFORM hatchet._insert_match(p_tenant, v_id, v_def.id, NULL,
                                          hatchet._on_failure_conditions(p_tenant, p_version));
        ELSIF cardinality(v_def.parents) > 0 THEN
            PERFORM hatchet._insert_match(p_tenant, v_id, v_def.id, NULL, hatchet._parent_conditions(v_def));
        ELSIF v_def.conditions <> '{}' THEN
            PERFORM hatchet._insert_match(p_tenant, v_id, v_def.id, CASE WHEN v_single THEN v_id END,
                                          hatchet._wait_conditions(v_def, v_now));
        ELSE
            PERFORM hatchet._queue_task(p_tenant, v_run, v_def,
                                        CASE WHEN v_single THEN v_id ELSE hatchet.gen_id() END, p_triggers, v_place);
        END IF;
    END LOOP;
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet._on_tasks_finished(p_tenant uuid, p_task_ids uuid[], p_run_ids uuid[], p_outcome text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run uuid;
BEGIN
    IF p_task_ids IS NULL OR cardinality(p_task_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM hatchet._advance(p_tenant, p_task_ids, p_run_ids,
                             array_fill(p_outcome, ARRAY[cardinality(p_task_ids)]));
    -- A run holds its workflow-level concurrency slots (they count runs, not tasks) until its last task is done:
    -- give them back, and admit waiting runs, in this same transaction.
    FOR v_run IN
        SELECT DISTINCT r FROM unnest(p_run_ids) AS r
        WHERE r IS NOT NULL
          AND EXISTS (SELECT 1 FROM hatchet.concurrency_slots s WHERE s.tenant_id = p_tenant AND s.task_id = r)
    LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = v_run);
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM hatchet.tasks t
            WHERE t.tenant_id = p_tenant AND t.run_id = v_run
              AND (EXISTS (SELECT 1 FROM hatchet.ready_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                   OR EXISTS (SELECT 1 FROM hatchet.running q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                   OR EXISTS (SELECT 1 FROM hatchet.delayed_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                   OR EXISTS (SELECT 1 FROM hatchet.concurrency_queue q
                              WHERE q.tenant_id = p_tenant AND q.task_id = t.id)));
        PERFORM hatchet._release_slots(p_tenant, ARRAY[v_run]);
    END LOOP;
    PERFORM hatchet._release_run_keys(p_tenant, p_run_ids);
END
$$;
COMMENT ON FUNCTION hatchet._on_tasks_finished(uuid, uuid[], uuid[], text) IS
    'advance the DAG runs of tasks that just reached COMPLETED, FAILED or CANCELLED (same transaction)';

CREATE OR REPLACE FUNCTION hatchet.cancel_run(run_id uuid, tenant_id uuid DEFAULT NULL, reason text DEFAULT 'run cancelled by user')
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(cancel_run.tenant_id, hatchet.default_tenant());
    p_run    uuid := cancel_run.run_id;
    v_task   uuid;
    v_match  uuid;
    v_fired  record;
    n        integer;
BEGIN
    IF p_run IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    IF hatchet._run_row(p_tenant, p_run) IS NULL
       AND NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.run_id = p_run
                                                       AND t.inserted_at >= hatchet.uuid_time(p_run)) THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['run', p_run::text]);
    END IF;
    -- Lock order: the run's in-flight rows first, then the run (as complete and fail do), so a worker completing one
    -- of these tasks right now waits for us instead of deadlocking with us; its result is then stale.
    PERFORM 1 FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM 1 FROM hatchet.ready_queue r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM 1 FROM hatchet.delayed_queue r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM hatchet._lock_runs(ARRAY[p_run]);
    n := -hatchet._count_cancelled(p_tenant, p_run);
    FOR v_task IN
        SELECT t.id FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
          AND (SELECT s.state FROM hatchet._task_state(p_tenant, t.id) s) IN ('QUEUED', 'RUNNING')
        ORDER BY t.id
    LOOP
        PERFORM hatchet.cancel(v_task, p_tenant, cancel_run.reason);
    END LOOP;
    FOR v_match IN SELECT x.id FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = p_run ORDER BY x.id
    LOOP
        v_fired := hatchet._fire_match(p_tenant, v_match, 'CANCEL', cancel_run.reason);
        IF v_fired.task_id IS NOT NULL THEN
            PERFORM hatchet._advance(p_tenant, ARRAY[v_fired.task_id], ARRAY[p_run], ARRAY[v_fired.outcome]);
        END IF;
    END LOOP;
    PERFORM hatchet._release_run_keys(p_tenant, ARRAY[p_run]);
    RETURN n + hatchet._count_cancelled(p_tenant, p_run);
END
$$;
COMMENT ON FUNCTION hatchet.cancel_run(uuid, uuid, text) IS
    'cancel every unfinished task of a run (queued, running or waiting); returns how many were cancelled';

CREATE OR REPLACE FUNCTION hatchet._create_event_run(p_tenant uuid, p_workflow text, p_version bigint, p_payload jsonb,
                                          p_metadata jsonb, p_priority integer, p_triggers jsonb DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM hatchet.workflow_versions v
                   WHERE v.tenant_id = p_tenant AND v.id = p_version AND v.definition ? 'idempotency') THEN
        RETURN hatchet._create_run(p_tenant, p_version, p_payload, p_metadata, p_priority, 'event', p_triggers);
    END IF;
    -- Only workflows with a key pay for this block's subtransaction.
    BEGIN
        RETURN hatchet._create_run(p_tenant, p_version, p_payload, p_metadata, p_priority, 'event', p_triggers);
    EXCEPTION WHEN unique_violation OR invalid_parameter_value THEN
        IF SQLSTATE = '22023' THEN
            RAISE WARNING 'pg_hatchet: an event did not trigger a run of workflow "%": %', p_workflow, SQLERRM;
        END IF;
        RETURN NULL;
    END;
END
$$;

CREATE OR REPLACE FUNCTION hatchet._push_events(p_tenant uuid, p_events jsonb) RETURNS uuid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids     uuid[] := '{}';
    v_e       jsonb;
    v_id      uuid;
    v_key     text;
    v_scope   text;
    v_payload jsonb;
    v_meta    jsonb;
    v_prio    integer;
    v_now     timestamptz;
    v_matches uuid[];
    v_match   uuid;
    v_wf      record;
    v_filter  record;
    v_cel     record;
    v_run_meta jsonb;
BEGIN
    -- Lock every run with a condition waiting for any of these keys up front, in one ordered pass, so bulk pushes
    -- racing each other (or completions in the same runs) cannot deadlock.
    PERFORM hatchet._lock_runs(ARRAY(
        SELECT x.run_id FROM hatchet.matches x
        WHERE x.tenant_id = p_tenant AND x.event_keys <> '{}'
          AND x.event_keys && ARRAY(SELECT e->>'key' FROM jsonb_array_elements(p_events) e)));
    FOR v_e IN SELECT e FROM jsonb_array_elements(p_events) WITH ORDINALITY AS x(e, ord) ORDER BY ord LOOP
        v_id := hatchet.gen_id();
        v_ids := v_ids || v_id;
        v_key := v_e->>'key';
        v_scope := v_e->>'scope';
        v_payload := v_e->'payload';
        v_meta := v_e->'additional_metadata';
        v_prio := (v_e->>'priority')::integer;
        v_now := clock_timestamp();
        INSERT INTO hatchet.events (tenant_id, inserted_at, id, key, payload, additional_metadata, scope)
        VALUES (p_tenant, hatchet.uuid_time(v_id), v_id, v_key, v_payload, v_meta, v_scope);

        -- 1. Conditions waiting for this key (DAG tasks' wait_for / skip_if / cancel_if user events).
        v_matches := ARRAY(SELECT x.id FROM hatchet.matches x
                           WHERE x.tenant_id = p_tenant AND x.event_keys <> '{}' AND x.event_keys @> ARRAY[v_key]
                           ORDER BY x.id);
        IF cardinality(v_matches) > 0 THEN
            -- (Locked above; runs created by this push's own triggers are invisible to everyone else.)
            PERFORM hatchet._lock_runs(ARRAY(SELECT x.run_id FROM hatchet.matches x
                                             WHERE x.tenant_id = p_tenant AND x.id = ANY (v_matches)));
            FOREACH v_match IN ARRAY v_matches LOOP
                PERFORM hatchet._satisfy_match(p_tenant, v_match, 'event', v_now, v_key, v_scope, v_payload, v_meta);
            END LOOP;
        END IF;

        -- 2. Workflows triggered by this key (latest versions), once per matching filter when they have filters.
        v_run_meta := hatchet._clean_metadata(v_meta)
                      || jsonb_build_object('hatchet__event_id', v_id, 'hatchet__event_key', v_key);
        FOR v_wf IN
            SELECT w.id AS workflow_id, w.name, v.id AS version_id,
                   EXISTS (SELECT 1 FROM hatchet.event_filters f
                           WHERE f.tenant_id = p_tenant AND f.workflow_id = w.id) AS has_filters
            FROM hatchet.workflows w
            CROSS JOIN LATERAL (SELECT x.id, x.event_triggers FROM hatchet.workflow_versions x
                                WHERE x.tenant_id = w.tenant_id AND x.workflow_id = w.id
                                ORDER BY x.id DESC LIMIT 1) v
            WHERE w.tenant_id = p_tenant
              AND EXISTS (SELECT 1 FROM unnest(v.event_triggers) p WHERE hatchet._event_key_matches(p, v_key))
            ORDER BY w.id
        LOOP
            IF NOT v_wf.has_filters THEN
                PERFORM hatchet._create_event_run(p_tenant, v_wf.name, v_wf.version_id, v_payload, v_run_meta, v_prio);
                CONTINUE;
            END IF;
            FOR v_filter IN
                SELECT f.id, f.expression, f.payload FROM hatchet.event_filters f
                WHERE f.tenant_id = p_tenant AND f.workflow_id = v_wf.workflow_id AND f.scope = v_scope
                ORDER BY f.created_at, f.id
            LOOP
                v_cel := hatchet._cel_bool(v_filter.expression, jsonb_build_object(
                    'input', v_payload, 'additional_metadata', v_meta, 'payload', v_filter.payload,
                    'event_id', v_id, 'event_key', v_key));
                IF v_cel.error IS NOT NULL THEN
                    -- A broken filter triggers nothing; the push itself succeeds (as in Hatchet).
                    RAISE WARNING 'pg_hatchet: a filter of workflow "%" (scope "%") did not trigger a run: %',
                        v_wf.name, v_scope, v_cel.error;
                ELSIF v_cel.ok THEN
                    PERFORM hatchet._create_event_run(p_tenant, v_wf.name, v_wf.version_id, v_payload, v_run_meta,
                                                      v_prio, jsonb_build_object('filter_payload', v_filter.payload));
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;
    RETURN v_ids;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.run_shape(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, readable_id text, step_id uuid, children_step_ids uuid[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        SELECT x.tenant_id, x.id, v.external_id AS version
        FROM hatchet.runs x
        JOIN hatchet.workflow_versions v ON v.tenant_id = x.tenant_id AND v.id = x.workflow_version_id
        WHERE x.tenant_id = coalesce(run_shape.tenant_id, hatchet.default_tenant())
          AND x.inserted_at = hatchet.uuid_time(run_shape.run_id) AND x.id = run_shape.run_id
    ), defs AS (
        SELECT d.readable_id, d.parents, md5(r.version::text || ':' || d.readable_id)::uuid AS step_id
        FROM r JOIN hatchet.task_definitions d ON d.tenant_id = r.tenant_id
        JOIN hatchet.workflow_versions v ON v.tenant_id = d.tenant_id AND v.id = d.workflow_version_id
        WHERE v.external_id = r.version
    )
    SELECT t.id, t.readable_id, p.step_id,
           ARRAY(SELECT c.step_id FROM defs c WHERE p.readable_id = ANY (c.parents) ORDER BY c.readable_id)
    FROM r
    JOIN hatchet.tasks t ON t.tenant_id = r.tenant_id AND t.run_id = r.id AND t.inserted_at >= hatchet.uuid_time(r.id)
    JOIN defs p ON p.readable_id = t.readable_id
    ORDER BY t.inserted_at, t.id
$$;
COMMENT ON FUNCTION hatchet.run_shape(uuid, uuid) IS
    'the created tasks of a run with stable step ids and the step ids of their children (Hatchet''s run shape)';

CREATE OR REPLACE FUNCTION hatchet.trigger_cron(cron_id uuid, tenant_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant  uuid := coalesce(trigger_cron.tenant_id, hatchet.default_tenant());
    c         hatchet.crons;
    v_version bigint;
BEGIN
    IF trigger_cron.cron_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['cron_id']);
    END IF;
    SELECT x.* INTO c FROM hatchet.crons x WHERE x.tenant_id = p_tenant AND x.id = trigger_cron.cron_id;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['cron', trigger_cron.cron_id::text]);
    END IF;
    SELECT v.id INTO v_version FROM hatchet.workflow_versions v
    WHERE v.tenant_id = p_tenant AND v.workflow_id = c.workflow_id ORDER BY v.id DESC LIMIT 1;
    RETURN hatchet._create_run(p_tenant, v_version, c.input,
        hatchet._clean_metadata(c.additional_metadata) || jsonb_build_object(
            'hatchet__cron_name', c.name, 'hatchet__cron_expression', c.expression, 'hatchet__triggered_by', 'cron'),
        c.priority, 'cron');
END
$$;
COMMENT ON FUNCTION hatchet.trigger_cron(uuid, uuid) IS
    'run a cron''s workflow once now, with the cron''s input and metadata; its schedule is unchanged; returns the run id';

CREATE OR REPLACE FUNCTION hatchet.receive_webhook(
    name      text,
    body      jsonb,
    headers   jsonb DEFAULT '{}',
    tenant_id uuid  DEFAULT NULL,
    OUT event_id uuid,
    OUT event_key text,
    OUT event_scope text,
    OUT event_payload jsonb
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(receive_webhook.tenant_id, hatchet.default_tenant());
    v_hook   record;
    v_vars   jsonb;
    v_value  jsonb;
BEGIN
    SELECT * INTO v_hook FROM hatchet.webhooks w WHERE w.tenant_id = p_tenant AND w.name = receive_webhook.name;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['webhook', receive_webhook.name]);
    END IF;
    event_payload := CASE WHEN jsonb_typeof(receive_webhook.body) = 'object' THEN receive_webhook.body
                          ELSE jsonb_build_object('body', receive_webhook.body) END
                     || coalesce(v_hook.static_payload, '{}');
    v_vars := jsonb_build_object('input', event_payload, 'headers', coalesce(receive_webhook.headers, '{}'));
    v_value := hatchet.cel_eval(v_hook.event_key_expression, v_vars);
    IF jsonb_typeof(v_value) IS DISTINCT FROM 'string' OR v_value #>> '{}' = '' THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('the event key expression of webhook "%s" gave %s, not a non-empty string',
                         v_hook.name, coalesce(v_value::text, 'null'))]);
    END IF;
    event_key := v_value #>> '{}';
    IF v_hook.scope_expression IS NOT NULL THEN
        v_value := hatchet.cel_eval(v_hook.scope_expression, v_vars);
        IF jsonb_typeof(v_value) IS DISTINCT FROM 'string' THEN
            PERFORM hatchet.raise_error('invalid_argument',
                ARRAY[format('the scope expression of webhook "%s" gave %s, not a string',
                             v_hook.name, coalesce(v_value::text, 'null'))]);
        END IF;
        event_scope := nullif(v_value #>> '{}', '');
    END IF;
    event_id := hatchet.push_event(event_key, event_payload, jsonb_build_object('hatchet__webhook_name', v_hook.name),
                                   event_scope, p_tenant);
END
$$;
COMMENT ON FUNCTION hatchet.receive_webhook(text, jsonb, jsonb, uuid) IS
    'turn an (authenticated) incoming webhook request into an event: body + static payload, key and scope from CEL';

CREATE OR REPLACE FUNCTION hatchet.complete_many(
    task_ids     uuid[],
    retry_counts integer[],
    outputs      jsonb[] DEFAULT NULL,
    tenant_id    uuid    DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
-- As for dequeue: one generic plan instead of re-planning per batch (complete_many of 1: 0.72 -> 0.39 ms).
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(complete_many.tenant_id, hatchet.default_tenant());
    v_now    timestamptz := clock_timestamp();
    v_limit  integer := current_setting('hatchet.max_payload_bytes')::integer;
    v_n      integer;
    v_bad    record;
    v_workers uuid[];
    v_slot_types text[];
    v_units integer[];
    v_keyed uuid[];
    v_dag_tasks uuid[];
    v_dag_runs uuid[];
BEGIN
    IF task_ids IS NULL OR retry_counts IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_ids and retry_counts']);
    END IF;
    IF cardinality(task_ids) <> cardinality(retry_counts)
       OR (outputs IS NOT NULL AND cardinality(outputs) <> cardinality(task_ids)) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY['task_ids, retry_counts and outputs must have the same length']);
    END IF;
    IF outputs IS NOT NULL THEN
        SELECT ord, o INTO v_bad FROM unnest(outputs) WITH ORDINALITY AS u(o, ord)
        WHERE pg_column_size(o) > v_limit ORDER BY ord LIMIT 1;
        IF FOUND THEN
            PERFORM hatchet._check_payload(format('outputs[%s]', v_bad.ord), v_bad.o, false);
        END IF;
    END IF;

    WITH input AS (
        SELECT DISTINCT ON (i.task_id) i.task_id, i.retry_count, i.output
        FROM unnest(task_ids, retry_counts, coalesce(outputs, array_fill(NULL::jsonb, ARRAY[cardinality(task_ids)])))
             AS i(task_id, retry_count, output)
    ), done AS (
        -- (task_id = ANY: probes the primary key per id; a join alone let the generic plan merge-join over every
        -- running row of the tenant)
        DELETE FROM hatchet.running r
        USING input i
        WHERE r.tenant_id = p_tenant AND r.task_id = ANY (task_ids)
          AND r.task_id = i.task_id AND r.retry_count = i.retry_count
        RETURNING r.task_id, r.task_inserted_at, r.retry_count, r.worker_id, r.worker_name, r.slot_type, r.slot_units,
                  r.queue, r.concurrency_key, r.run_id, r.assigned_at, i.output
    ), ev AS (
        INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                         worker_id, worker_name, assigned_at)
        SELECT p_tenant, d.task_inserted_at, d.task_id, v_now, d.retry_count, 'COMPLETED', d.worker_id, d.worker_name,
               d.assigned_at
        FROM done d
    ), out AS (
        -- An empty output is the absence of a payload row: no-op tasks write nothing here.
        INSERT INTO hatchet.payloads (tenant_id, task_inserted_at, task_id, retry_count, kind, data)
        SELECT p_tenant, d.task_inserted_at, d.task_id, d.retry_count, 'OUTPUT', d.output
        FROM done d WHERE d.output IS NOT NULL AND d.output <> '{}'::jsonb
    ), idem AS (
        DELETE FROM hatchet.idempotency_keys k USING done d WHERE k.tenant_id = p_tenant AND k.task_id = d.task_id
    ), run_keys AS (
        -- The task of a single-task workflow run is the run (its hot rows carry no run_id): done, it gives back the
        -- run's STATUS idempotency key. (DAG runs give theirs back in _on_tasks_finished.)
        DELETE FROM hatchet.run_idempotency_keys k USING done d
        WHERE k.tenant_id = p_tenant AND d.run_id IS NULL AND k.run_id = d.task_id AND k.until_done
    )
    SELECT count(*), array_agg(d.worker_id), array_agg(d.slot_type), array_agg(d.slot_units),
           array_agg(d.task_id) FILTER (WHERE d.concurrency_key IS NOT NULL),
           array_agg(d.task_id) FILTER (WHERE d.run_id IS NOT NULL), array_agg(d.run_id) FILTER (WHERE d.run_id IS NOT NULL)
    INTO v_n, v_workers, v_slot_types, v_units, v_keyed, v_dag_tasks, v_dag_runs
    FROM done d;
    IF v_n > 0 THEN
        -- Separate statements, after the one above, so they see its effects (outputs are readable by DAG children).
        -- Lock order: hot rows (taken above), then the DAG runs, then concurrency groups, then worker slots.
        -- (Plain SQL consumers hold neither worker slots nor gates nor DAG runs: nothing more to do for them.)
        IF v_dag_runs IS NOT NULL THEN
            PERFORM hatchet._lock_pending_runs(p_tenant, v_dag_runs);
        END IF;
        IF v_keyed IS NOT NULL OR cardinality(array_remove(v_workers, NULL)) > 0 THEN
            PERFORM hatchet._release(p_tenant, v_workers, v_slot_types, v_units, v_keyed);
        END IF;
        IF v_dag_tasks IS NOT NULL THEN
            PERFORM hatchet._on_tasks_finished(p_tenant, v_dag_tasks, v_dag_runs, 'COMPLETED');
        END IF;
    END IF;
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION hatchet.complete_many(uuid[], integer[], jsonb[], uuid) IS
    'complete a batch of attempts in one statement; stale attempts are skipped; returns how many completed';

CREATE OR REPLACE FUNCTION hatchet._fail_attempt(p_tenant uuid, p_run hatchet.running, p_error text, p_retryable boolean,
                                      p_internal boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now  timestamptz := clock_timestamp();
    v_task record;
    v_next integer := p_run.retry_count + 1;
    v_delay interval;
    v_retry boolean;
    v_max_internal constant integer := 10;
BEGIN
    SELECT t.retries, t.backoff_factor, t.backoff_max_seconds, t.schedule_timeout INTO v_task
    FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.inserted_at = p_run.task_inserted_at AND t.id = p_run.task_id;

    -- The worker slot is free either way. Concurrency slots stay with a retry that is queued at once (the task
    -- never stops being in progress) and are given back when it finishes or waits out a backoff.
    v_retry := p_retryable AND ((p_internal AND p_run.internal_retry_count < v_max_internal)
                                OR (NOT p_internal AND p_run.app_retry_count < v_task.retries));
    PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[p_run.run_id]);
    PERFORM hatchet._release(p_tenant, ARRAY[p_run.worker_id], ARRAY[p_run.slot_type], ARRAY[p_run.slot_units],
        CASE WHEN p_run.concurrency_key IS NOT NULL
                  AND (NOT v_retry OR (NOT p_internal AND v_task.backoff_factor IS NOT NULL))
             THEN ARRAY[p_run.task_id] ELSE '{}' END);

    IF v_retry THEN
        INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                         worker_id, worker_name, reason, assigned_at)
        VALUES (p_tenant, p_run.task_inserted_at, p_run.task_id, v_now, p_run.retry_count,
                CASE WHEN p_internal THEN 'REASSIGNED' ELSE 'RETRYING' END::hatchet.task_event_type,
                p_run.worker_id, p_run.worker_name, p_error, p_run.assigned_at);
        IF NOT p_internal AND v_task.backoff_factor IS NOT NULL THEN
            v_delay := hatchet.backoff_delay(v_task.backoff_factor, v_task.backoff_max_seconds,
                                             p_run.app_retry_count + 1);
            INSERT INTO hatchet.delayed_queue (tenant_id, task_id, task_inserted_at, ready_at, retry_count,
                                               app_retry_count, internal_retry_count, priority, queue, reason,
                                               concurrency_key, run_id, task_definition_id)
            VALUES (p_tenant, p_run.task_id, p_run.task_inserted_at, v_now + v_delay, v_next,
                    p_run.app_retry_count + 1, p_run.internal_retry_count, 4, p_run.queue, 'backoff',
                    -- no concurrency_key: its slots were given back above; it passes the gates again when due
                    NULL, p_run.run_id, p_run.task_definition_id);
        ELSE
            -- Retries go ahead of new work: priority 4 is above every user priority.
            INSERT INTO hatchet.ready_queue (tenant_id, task_id, task_inserted_at, fair_rank, schedule_timeout_at,
                                             retry_count, app_retry_count, internal_retry_count, priority, queue,
                                             concurrency_key, run_id, task_definition_id)
            VALUES (p_tenant, p_run.task_id, p_run.task_inserted_at, hatchet._queue_vtime(p_tenant, p_run.queue),
                    v_now + v_task.schedule_timeout, v_next,
                    p_run.app_retry_count + CASE WHEN p_internal THEN 0 ELSE 1 END,
                    p_run.internal_retry_count + CASE WHEN p_internal THEN 1 ELSE 0 END,
                    4, p_run.queue, p_run.concurrency_key, p_run.run_id, p_run.task_definition_id);
            PERFORM hatchet._ready(p_run.queue);
        END IF;
        RETURN 'QUEUED';
    END IF;

    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                     worker_id, worker_name, reason, assigned_at)
    VALUES (p_tenant, p_run.task_inserted_at, p_run.task_id, v_now, p_run.retry_count, 'FAILED', p_run.worker_id,
            p_run.worker_name, p_error, p_run.assigned_at);
    DELETE FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant AND k.task_id = p_run.task_id;
    DELETE FROM hatchet.run_idempotency_keys k  -- a single-task workflow run (see complete_many)
    WHERE k.tenant_id = p_tenant AND k.run_id = p_run.task_id AND k.until_done;
    IF p_run.run_id IS NOT NULL THEN
        PERFORM hatchet._on_tasks_finished(p_tenant, ARRAY[p_run.task_id], ARRAY[p_run.run_id], 'FAILED');
    END IF;
    RETURN 'FAILED';
END
$$;

CREATE OR REPLACE FUNCTION hatchet.cancel(
    task_id   uuid,
    tenant_id uuid DEFAULT NULL,
    reason    text DEFAULT 'cancelled by user'
) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(cancel.tenant_id, hatchet.default_tenant());
    p_task   uuid := cancel.task_id;
    v_run    hatchet.running;
    v_found  boolean;
    v_at     timestamptz;
    v_rc     integer;
    v_queue  text;
    v_key    text;
    v_run_id uuid;
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    -- An attempt moves ready -> running (dequeue) and running -> ready/delayed (retry). Looking in that order, and
    -- again if a concurrent move hid it, finds it wherever it is.
    FOR attempt IN 1..3 LOOP
        DELETE FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
        RETURNING r.task_inserted_at, r.retry_count, r.queue, r.concurrency_key, r.run_id
        INTO v_at, v_rc, v_queue, v_key, v_run_id;
        v_found := FOUND;
        IF NOT v_found THEN
            DELETE FROM hatchet.delayed_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.task_inserted_at, r.retry_count, r.queue, r.concurrency_key, r.run_id
            INTO v_at, v_rc, v_queue, v_key, v_run_id;
            v_found := FOUND;
        END IF;
        IF NOT v_found THEN
            DELETE FROM hatchet.concurrency_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.task_inserted_at, r.retry_count, r.queue, r.key, r.run_id
            INTO v_at, v_rc, v_queue, v_key, v_run_id;
            v_found := FOUND;
        END IF;
        IF NOT v_found THEN
            DELETE FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.* INTO v_run;
            IF FOUND THEN
                PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[v_run.run_id]);
                PERFORM hatchet._release(p_tenant, ARRAY[v_run.worker_id], ARRAY[v_run.slot_type],
                                         ARRAY[v_run.slot_units], ARRAY[p_task]);
                -- channel hatchet_cancel, payload "task_id:retry_count:worker_id" (worker empty for SQL consumers)
                PERFORM pg_notify('hatchet_cancel',
                                  p_task::text || ':' || v_run.retry_count || ':' || coalesce(v_run.worker_id::text, ''));
                v_at := v_run.task_inserted_at;
                v_rc := v_run.retry_count;
                v_run_id := v_run.run_id;
                v_found := true;
            END IF;
        END IF;
        IF v_found THEN
            -- (v_run is NULL unless the attempt was running: then it keeps its worker and assignment time)
            INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, reason,
                                             worker_id, worker_name, assigned_at)
            VALUES (p_tenant, v_at, p_task, v_rc, 'CANCELLED', cancel.reason, v_run.worker_id, v_run.worker_name,
                    v_run.assigned_at);
            DELETE FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant AND k.task_id = p_task;
            DELETE FROM hatchet.run_idempotency_keys k  -- a single-task workflow run (see complete_many)
            WHERE k.tenant_id = p_tenant AND k.run_id = p_task AND k.until_done;
            -- Whatever gates it held (or waited behind) are given back, and waiters take the room.
            PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[v_run_id]);
            PERFORM hatchet._release_slots(p_tenant, ARRAY[p_task]);
            IF v_run_id IS NOT NULL THEN
                PERFORM hatchet._on_tasks_finished(p_tenant, ARRAY[p_task], ARRAY[v_run_id], 'CANCELLED');
            END IF;
            RETURN true;
        END IF;
        -- Not in flight: finished, unknown, or moved between our looks.
        IF (SELECT s.state FROM hatchet._task_state(p_tenant, p_task) s) IS NULL THEN
            PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
        END IF;
        IF (SELECT s.state FROM hatchet._task_state(p_tenant, p_task) s) IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN false;
END
$$;
COMMENT ON FUNCTION hatchet.cancel(uuid, uuid, text) IS
    'cancel a queued or running task; false if it had already finished';

-- =====================================================================================================================
-- 4. Roles and privileges (issue 15); last, so that its grants and SECURITY DEFINER options apply to the final
--    definitions above
-- =====================================================================================================================

