-- pg_hatchet 0.1.0 -> 0.2.0 (applied by ALTER EXTENSION pg_hatchet UPDATE TO '0.2.0').
--
-- What 0.2.0 changes in the installed SQL: no table, type, index or grant; the bodies of the functions below, and one
-- list function for event filters.
--   * sql/ is laid out by entity (a move, no change to any definition).
--   * Checks that several functions repeated now live in one helper each (same checks, same order, same SQLSTATEs
--     and messages):
--       hatchet._check_run_options(input, metadata, priority)  run_workflow, create_cron, schedule
--       hatchet._check_page(limit, offset)                     list_runs, list_events
--       hatchet._check_webhook_event(key, scope, payload)      create_webhook, update_webhook
--   * run_maintenance: a comment in its body names sql/crons.sql (was sql/cron.sql).
--   * Event filters have one list function: list_filters(workflow, tenant_id, filter_ids, workflow_ids, scopes,
--     max_rows, skip_rows) returns find_filters' columns (with workflow_id and total) and takes its filters and
--     paging; find_filters is dropped. Rows come oldest first (list_filters sorted by workflow name first).
--   * search_path: every function pins search_path = pg_catalog, pg_temp (the ALTER FUNCTION statements at the end),
--     except four per-row helpers, whose bodies now qualify every name instead.
-- Each definition below is the same text as in the 0.2.0 install script (whose SET search_path clause the ALTER
-- FUNCTION statements at the end add), so an updated 0.1.0 and a fresh 0.2.0 have the same catalog.

\echo Use "ALTER EXTENSION pg_hatchet UPDATE TO '0.2.0'" to load this file. \quit

-- new helper, in sql/options.sql
CREATE FUNCTION hatchet._check_run_options(p_input jsonb, p_metadata jsonb, p_priority integer) RETURNS void
LANGUAGE plpgsql STABLE
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

-- new helper, in sql/options.sql
CREATE FUNCTION hatchet._check_page(p_limit integer, p_offset integer) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('limit must be between 1 and 10000, not %s',
                                                                     coalesce(p_limit::text, 'null'))]);
    END IF;
    IF p_offset IS NULL OR p_offset < 0 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('offset must not be negative, not %s',
                                                                     coalesce(p_offset::text, 'null'))]);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_page(integer, integer) IS 'reject a limit outside 1..10000 or a negative offset';

-- new helper, in sql/webhooks.sql
CREATE FUNCTION hatchet._check_webhook_event(p_key_expression text, p_scope_expression text, p_static_payload jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF p_key_expression = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a webhook needs an event key expression']);
    END IF;
    IF p_key_expression IS NOT NULL THEN
        PERFORM hatchet.cel_check(p_key_expression);
    END IF;
    IF coalesce(p_scope_expression, '') <> '' THEN
        PERFORM hatchet.cel_check(p_scope_expression);
    END IF;
    IF p_static_payload IS NOT NULL AND jsonb_typeof(p_static_payload) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['static payload must be a JSON object']);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_webhook_event(text, text, jsonb) IS
    'reject a webhook''s empty event key expression, a CEL expression that does not compile or a non-object payload';

-- now in sql/crons.sql
CREATE OR REPLACE FUNCTION hatchet.create_cron(
    workflow            text,
    name                text,
    expression          text,
    input               jsonb   DEFAULT '{}',
    additional_metadata jsonb   DEFAULT '{}',
    priority            integer DEFAULT NULL,
    tenant_id           uuid    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(create_cron.tenant_id, hatchet.default_tenant());
    v_wf     record;
    v_id     uuid := hatchet.gen_id();
    v_next   timestamptz;
BEGIN
    v_wf := hatchet._latest_version(p_tenant, create_cron.workflow);
    IF create_cron.name IS NULL OR create_cron.expression IS NULL THEN
        PERFORM hatchet.raise_error('null_argument',
            ARRAY[CASE WHEN create_cron.name IS NULL THEN 'name' ELSE 'expression' END]);
    END IF;
    IF create_cron.name = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['cron name must not be empty']);
    END IF;
    PERFORM hatchet._check_run_options(create_cron.input, create_cron.additional_metadata, create_cron.priority);
    v_next := hatchet.cron_next(create_cron.expression, clock_timestamp());  -- raises for a bad expression
    IF v_next IS NULL THEN
        PERFORM hatchet.raise_error('invalid_cron', ARRAY[create_cron.expression, 'The expression never fires.']);
    END IF;
    INSERT INTO hatchet.crons (tenant_id, id, workflow_id, name, expression, input, additional_metadata, priority,
                               method, next_tick_at)
    VALUES (p_tenant, v_id, v_wf.workflow_id, create_cron.name, create_cron.expression, create_cron.input,
            create_cron.additional_metadata, create_cron.priority, 'API', v_next)
    ON CONFLICT ON CONSTRAINT crons_name_key DO NOTHING;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('duplicate_object',
            ARRAY['cron', format('%s" of workflow "%s', create_cron.name, create_cron.workflow)]);
    END IF;
    RETURN v_id;
END
$$;

-- now in sql/crons.sql
CREATE OR REPLACE FUNCTION hatchet.schedule(
    workflow            text,
    run_at              timestamptz,
    input               jsonb   DEFAULT '{}',
    additional_metadata jsonb   DEFAULT '{}',
    priority            integer DEFAULT NULL,
    tenant_id           uuid    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(schedule.tenant_id, hatchet.default_tenant());
    v_wf     record;
    v_id     uuid := hatchet.gen_id();
BEGIN
    v_wf := hatchet._latest_version(p_tenant, schedule.workflow);
    IF schedule.run_at IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_at']);
    END IF;
    IF NOT isfinite(schedule.run_at) THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['run_at must be a finite time']);
    END IF;
    PERFORM hatchet._check_run_options(schedule.input, schedule.additional_metadata, schedule.priority);
    INSERT INTO hatchet.scheduled_runs (tenant_id, id, workflow_id, run_at, input, additional_metadata, priority)
    VALUES (p_tenant, v_id, v_wf.workflow_id, schedule.run_at, schedule.input, schedule.additional_metadata,
            schedule.priority);
    RETURN v_id;
END
$$;

-- now in sql/events.sql
CREATE OR REPLACE FUNCTION hatchet.list_events(
    keys      text[]      DEFAULT NULL,
    since     timestamptz DEFAULT NULL,
    until     timestamptz DEFAULT NULL,
    "limit"   integer     DEFAULT 50,
    "offset"  integer     DEFAULT 0,
    tenant_id uuid        DEFAULT NULL
)
RETURNS TABLE (id uuid, key text, payload jsonb, additional_metadata jsonb, scope text, created_at timestamptz,
               runs jsonb, total bigint)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := coalesce(list_events.tenant_id, hatchet.default_tenant());
BEGIN
    PERFORM hatchet._check_page(list_events."limit", list_events."offset");
    RETURN QUERY
    SELECT e.id, e.key, e.payload, e.additional_metadata, e.scope, e.inserted_at,
           coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'status', hatchet.run_status(r.id, p_tenant))
                                      ORDER BY r.id)
                     FROM hatchet.runs r
                     WHERE r.tenant_id = e.tenant_id AND r.inserted_at >= e.inserted_at
                       AND r.additional_metadata ->> 'hatchet__event_id' = e.id::text), '[]'),
           count(*) OVER ()
    FROM hatchet.events e
    WHERE e.tenant_id = p_tenant AND (list_events.keys IS NULL OR e.key = ANY (list_events.keys))
      AND e.inserted_at >= coalesce(list_events.since, '-infinity')
      AND e.inserted_at <= coalesce(list_events.until, 'infinity')
    ORDER BY e.inserted_at DESC, e.id DESC
    LIMIT list_events."limit" OFFSET list_events."offset";
END
$$;

-- now in sql/maintenance.sql
CREATE OR REPLACE FUNCTION hatchet.run_maintenance() RETURNS timestamptz
LANGUAGE plpgsql
AS $$
DECLARE
    v_now   timestamptz := clock_timestamp();
    v_limit integer := coalesce(current_setting('hatchet.batch_limit', true)::integer, 1000);
    v_next  timestamptz;
    v_tenant uuid;
BEGIN
    FOR v_tenant IN SELECT t.tenant_id FROM hatchet.tenants t LOOP
        PERFORM hatchet._promote_due(v_tenant, NULL, v_now, v_limit);
        PERFORM hatchet._reap_dead_workers(v_tenant, v_now);
        PERFORM hatchet._reap_timeouts(v_tenant, v_now, v_limit);
        PERFORM hatchet._expire_queued(v_tenant, v_now, v_limit);
    END LOOP;
    SELECT min(x) INTO v_next FROM (
        SELECT (SELECT min(d.ready_at) FROM hatchet.delayed_queue d WHERE d.tenant_id = t.tenant_id) AS x
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(r.timeout_at) FROM hatchet.running r WHERE r.tenant_id = t.tenant_id) FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(r.schedule_timeout_at) FROM hatchet.ready_queue r WHERE r.tenant_id = t.tenant_id)
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(r.schedule_timeout_at) FROM hatchet.concurrency_queue r WHERE r.tenant_id = t.tenant_id)
        FROM hatchet.tenants t
    ) due;
    -- Crons, schedules and sleeps (sql/crons.sql, sql/runs.sql): fired here, and their next due time counts too.
    RETURN least(v_next, hatchet._run_time_triggers(v_now));
END
$$;

-- now in sql/runs.sql
CREATE OR REPLACE FUNCTION hatchet.run_workflow(
    name                text,
    input               jsonb   DEFAULT '{}',
    additional_metadata jsonb   DEFAULT '{}',
    priority            integer DEFAULT NULL,
    tenant_id           uuid    DEFAULT NULL,
    parent_task_id      uuid    DEFAULT NULL,
    child_index         integer DEFAULT NULL,
    child_key           text    DEFAULT NULL,
    desired_worker_id   uuid    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(run_workflow.tenant_id, hatchet.default_tenant());
    v_wf     record;
    v_id     uuid;
BEGIN
    PERFORM hatchet._check_run_options(run_workflow.input, run_workflow.additional_metadata, run_workflow.priority);
    v_wf := hatchet._latest_version(p_tenant, run_workflow.name);
    IF run_workflow.desired_worker_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM hatchet.workers w WHERE w.tenant_id = p_tenant AND w.id = run_workflow.desired_worker_id) THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['worker', run_workflow.desired_worker_id::text]);
    END IF;

    -- A child run spawned again by a retry of its parent (same parent task and child index or key) is the same run.
    IF run_workflow.parent_task_id IS NOT NULL
       AND (run_workflow.child_key IS NOT NULL OR run_workflow.child_index IS NOT NULL) THEN
        PERFORM pg_advisory_xact_lock(1212240963, hashtext(run_workflow.parent_task_id::text));
        SELECT r.id INTO v_id FROM hatchet.runs r
        WHERE r.tenant_id = p_tenant AND r.parent_task_id = run_workflow.parent_task_id
          AND r.inserted_at >= hatchet.uuid_time(run_workflow.parent_task_id)
          AND CASE WHEN run_workflow.child_key IS NOT NULL THEN r.child_key = run_workflow.child_key
                   ELSE r.child_key IS NULL AND r.child_index = run_workflow.child_index END
        ORDER BY r.inserted_at LIMIT 1;
        IF FOUND THEN
            RETURN v_id;
        END IF;
    END IF;

    RETURN hatchet._create_run(p_tenant, v_wf.version_id, run_workflow.input, run_workflow.additional_metadata,
                               run_workflow.priority, 'manual', NULL, run_workflow.parent_task_id,
                               run_workflow.child_index, run_workflow.child_key, run_workflow.desired_worker_id);
END
$$;

-- now in sql/runs.sql
CREATE OR REPLACE FUNCTION hatchet.list_runs(
    since          timestamptz DEFAULT NULL,
    until          timestamptz DEFAULT NULL,
    workflow_ids   uuid[]      DEFAULT NULL,
    metadata       jsonb       DEFAULT NULL,
    parent_task    uuid        DEFAULT NULL,
    statuses       text[]      DEFAULT NULL,
    worker_id      uuid        DEFAULT NULL,
    event_id       uuid        DEFAULT NULL,
    "limit"        integer     DEFAULT 50,
    "offset"       integer     DEFAULT 0,
    tenant_id      uuid        DEFAULT NULL
)
RETURNS TABLE (id uuid, status text, input jsonb, additional_metadata jsonb, created_at timestamptz,
               workflow_name text, workflow_id uuid, workflow_version_id uuid, parent_task_id uuid,
               triggered_by text, children bigint, total bigint)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := coalesce(list_runs.tenant_id, hatchet.default_tenant());
    v_bad    text;
BEGIN
    PERFORM hatchet._check_page(list_runs."limit", list_runs."offset");
    SELECT s INTO v_bad FROM unnest(list_runs.statuses) s
    WHERE s IS NULL OR s NOT IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED') LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'statuses must be QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED, not %s', coalesce(v_bad, 'null'))]);
    END IF;
    IF list_runs.metadata IS NOT NULL AND jsonb_typeof(list_runs.metadata) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['metadata must be a JSON object']);
    END IF;
    RETURN QUERY
    SELECT v.*, count(*) OVER ()
    FROM hatchet.runs r
    JOIN hatchet.workflow_versions wv ON wv.tenant_id = r.tenant_id AND wv.id = r.workflow_version_id
    JOIN hatchet.workflows w ON w.tenant_id = wv.tenant_id AND w.id = wv.workflow_id
    CROSS JOIN LATERAL hatchet._run_view(p_tenant, r) v
    WHERE r.tenant_id = p_tenant
      AND r.inserted_at >= coalesce(list_runs.since, '-infinity') AND r.inserted_at <= coalesce(list_runs.until, 'infinity')
      AND (list_runs.workflow_ids IS NULL OR w.external_id = ANY (list_runs.workflow_ids))
      AND (list_runs.metadata IS NULL OR r.additional_metadata @> list_runs.metadata)
      AND (list_runs.parent_task IS NULL OR r.parent_task_id = list_runs.parent_task)
      AND (list_runs.event_id IS NULL OR r.additional_metadata ->> 'hatchet__event_id' = list_runs.event_id::text)
      AND (list_runs.statuses IS NULL OR v.status = ANY (list_runs.statuses))
      AND (list_runs.worker_id IS NULL OR EXISTS (
              SELECT 1 FROM hatchet.tasks t CROSS JOIN LATERAL hatchet.task_events(t.id, p_tenant) e
              WHERE t.tenant_id = r.tenant_id AND t.run_id = r.id AND t.inserted_at >= r.inserted_at
                AND e.event_type = 'ASSIGNED' AND e.worker = list_runs.worker_id::text))
    ORDER BY r.inserted_at DESC, r.id DESC
    LIMIT list_runs."limit" OFFSET list_runs."offset";
END
$$;

-- now in sql/webhooks.sql
CREATE OR REPLACE FUNCTION hatchet.create_webhook(
    name                 text,
    source_name          text,
    event_key_expression text,
    auth_type            text,
    auth                 jsonb,
    scope_expression     text    DEFAULT NULL,
    static_payload       jsonb   DEFAULT NULL,
    return_event         boolean DEFAULT true,
    tenant_id            uuid    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(create_webhook.tenant_id, hatchet.default_tenant());
    v_id     uuid := hatchet.gen_id();
BEGIN
    IF coalesce(create_webhook.name, '') = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a webhook needs a name']);
    END IF;
    IF NOT coalesce(create_webhook.source_name IN ('GENERIC', 'GITHUB', 'STRIPE', 'SLACK', 'LINEAR', 'SVIX'), false) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('unknown webhook source %s', coalesce(create_webhook.source_name, 'null'))]);
    END IF;
    PERFORM hatchet._check_webhook_event(coalesce(create_webhook.event_key_expression, ''),
                                         create_webhook.scope_expression, create_webhook.static_payload);
    PERFORM hatchet._check_webhook_auth(create_webhook.auth_type, create_webhook.auth);
    INSERT INTO hatchet.webhooks (tenant_id, name, id, source_name, event_key_expression, scope_expression,
                                  static_payload, auth_type, auth, return_event)
    VALUES (p_tenant, create_webhook.name, v_id, create_webhook.source_name, create_webhook.event_key_expression,
            nullif(create_webhook.scope_expression, ''), create_webhook.static_payload, create_webhook.auth_type,
            create_webhook.auth, coalesce(create_webhook.return_event, true))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('duplicate_object', ARRAY['webhook', create_webhook.name]);
    END IF;
    RETURN v_id;
END
$$;

-- now in sql/webhooks.sql
CREATE OR REPLACE FUNCTION hatchet.update_webhook(
    name                 text,
    event_key_expression text    DEFAULT NULL,
    scope_expression     text    DEFAULT NULL,
    static_payload       jsonb   DEFAULT NULL,
    return_event         boolean DEFAULT NULL,
    tenant_id            uuid    DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM hatchet._check_webhook_event(update_webhook.event_key_expression, update_webhook.scope_expression,
                                         update_webhook.static_payload);
    UPDATE hatchet.webhooks w
    SET event_key_expression = coalesce(update_webhook.event_key_expression, w.event_key_expression),
        scope_expression     = CASE WHEN update_webhook.scope_expression IS NULL THEN w.scope_expression
                                    ELSE nullif(update_webhook.scope_expression, '') END,
        static_payload       = coalesce(update_webhook.static_payload, w.static_payload),
        return_event         = coalesce(update_webhook.return_event, w.return_event),
        updated_at           = now()
    WHERE w.tenant_id = coalesce(update_webhook.tenant_id, hatchet.default_tenant()) AND w.name = update_webhook.name;
    RETURN FOUND;
END
$$;

-- One list function for event filters: list_filters takes find_filters' ids, public workflow ids, scopes and paging
-- (and its total column); find_filters is gone (sql/events.sql).
DROP FUNCTION hatchet.find_filters(uuid, uuid[], uuid[], text[], integer, integer);
DROP FUNCTION hatchet.list_filters(text, uuid);

-- The one list of event filters: a tenant's filters, optionally only one workflow (by name) or some ids, workflows
-- (public ids) and scopes, oldest first, one page of them (max_rows NULL: all), each row with the total number that
-- matched (for pagination).
CREATE FUNCTION hatchet.list_filters(
    workflow     text    DEFAULT NULL,
    tenant_id    uuid    DEFAULT NULL,
    filter_ids   uuid[]  DEFAULT NULL,
    workflow_ids uuid[]  DEFAULT NULL,
    scopes       text[]  DEFAULT NULL,
    max_rows     integer DEFAULT NULL,
    skip_rows    integer DEFAULT 0
) RETURNS TABLE (filter_id uuid, workflow_id uuid, workflow text, scope text, expression text, payload jsonb,
                 is_declarative boolean, created_at timestamptz, total bigint)
LANGUAGE sql STABLE
AS $$
    SELECT f.id, w.external_id, w.name, f.scope, f.expression, f.payload, f.is_declarative, f.created_at,
           count(*) OVER ()
    FROM hatchet.event_filters f
    JOIN hatchet.workflows w ON w.tenant_id = f.tenant_id AND w.id = f.workflow_id
    WHERE f.tenant_id = coalesce(list_filters.tenant_id, hatchet.default_tenant())
      AND (list_filters.workflow IS NULL OR w.name = list_filters.workflow)
      AND (list_filters.filter_ids IS NULL OR f.id = ANY (list_filters.filter_ids))
      AND (list_filters.workflow_ids IS NULL OR w.external_id = ANY (list_filters.workflow_ids))
      AND (list_filters.scopes IS NULL OR f.scope = ANY (list_filters.scopes))
    ORDER BY f.created_at, f.id
    LIMIT CASE WHEN list_filters.max_rows IS NOT NULL THEN greatest(list_filters.max_rows, 0) END
    OFFSET greatest(coalesce(list_filters.skip_rows, 0), 0)
$$;
COMMENT ON FUNCTION hatchet.list_filters(text, uuid, uuid[], uuid[], text[], integer, integer) IS
    'a page of a tenant''s event filters by workflow name, id, workflow public id and scope, with the total count';

-- ---------------------------------------------------------------------------------------------------------------------
-- search_path (issue 15, CVE-2018-1058 class): every function pins search_path = pg_catalog, pg_temp, so a name in a
-- function body never resolves to an object planted in a schema on the caller's path (not even a better-matching
-- overload, which wins over pg_catalog's own even when pg_catalog is searched first). Four helpers called per row in
-- hot statements stay unpinned and qualify every name instead (sql/schema.sql's header says why): their bodies are
-- replaced here. hatchet.maintain_partitions was pinned in 0.1.0 already.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet._event_key_matches(p_pattern text, p_key text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_key OPERATOR(pg_catalog.~~) pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
               p_pattern, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%')
$$;

CREATE OR REPLACE FUNCTION hatchet._queue_vtime(p_tenant uuid, p_queue text) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v bigint;
BEGIN
    SELECT q.vtime INTO v FROM hatchet.queues q
    WHERE q.tenant_id OPERATOR(pg_catalog.=) p_tenant AND q.name OPERATOR(pg_catalog.=) p_queue;
    IF NOT FOUND THEN
        INSERT INTO hatchet.queues (tenant_id, name) VALUES (p_tenant, p_queue) ON CONFLICT DO NOTHING;
        v := 0;
    END IF;
    RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION hatchet._label_matches(p_worker_labels jsonb, p_key text, p_want jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v_have pg_catalog.jsonb := (p_worker_labels OPERATOR(pg_catalog.->) p_key);
    v_cmp  pg_catalog.text  := pg_catalog.upper(coalesce((p_want OPERATOR(pg_catalog.->>) 'comparator'), 'EQUAL'));
    v_val  pg_catalog.jsonb := (p_want OPERATOR(pg_catalog.->) 'value');
    v_have_n numeric;
    v_val_n  numeric;
BEGIN
    IF v_have IS NULL OR v_val IS NULL THEN
        RETURN false;
    END IF;
    IF v_cmp OPERATOR(pg_catalog.=) ANY ('{EQUAL,NOT_EQUAL}') THEN
        RETURN ((v_have OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.=) (v_val OPERATOR(pg_catalog.#>>) '{}'))
               OPERATOR(pg_catalog.=) (v_cmp OPERATOR(pg_catalog.=) 'EQUAL');
    END IF;
    IF pg_catalog.jsonb_typeof(v_have) OPERATOR(pg_catalog.<>) 'number'
       OR pg_catalog.jsonb_typeof(v_val) OPERATOR(pg_catalog.<>) 'number' THEN
        RETURN false;
    END IF;
    v_have_n := (v_have OPERATOR(pg_catalog.#>>) '{}')::numeric;
    v_val_n := (v_val OPERATOR(pg_catalog.#>>) '{}')::numeric;
    RETURN CASE
        WHEN v_cmp OPERATOR(pg_catalog.=) ANY ('{GREATER_THAN,GT}') THEN v_have_n OPERATOR(pg_catalog.>) v_val_n
        WHEN v_cmp OPERATOR(pg_catalog.=) ANY ('{GREATER_THAN_OR_EQUAL,GTE}')
            THEN v_have_n OPERATOR(pg_catalog.>=) v_val_n
        WHEN v_cmp OPERATOR(pg_catalog.=) ANY ('{LESS_THAN,LT}') THEN v_have_n OPERATOR(pg_catalog.<) v_val_n
        WHEN v_cmp OPERATOR(pg_catalog.=) ANY ('{LESS_THAN_OR_EQUAL,LTE}') THEN v_have_n OPERATOR(pg_catalog.<=) v_val_n
        ELSE false
    END;
END
$$;

CREATE OR REPLACE FUNCTION hatchet._worker_score(p_worker_id uuid, p_worker_labels jsonb, p_desired jsonb,
                                      p_sticky hatchet.sticky_strategy, p_desired_worker uuid)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v_score bigint := 0;
    v_label record;
    v_ok boolean;
BEGIN
    IF p_sticky OPERATOR(pg_catalog.=) 'HARD' AND p_desired_worker IS NOT NULL
       AND p_desired_worker OPERATOR(pg_catalog.<>) p_worker_id THEN
        RETURN NULL;
    END IF;
    IF p_sticky OPERATOR(pg_catalog.=) 'SOFT' AND p_desired_worker OPERATOR(pg_catalog.=) p_worker_id THEN
        v_score := 1000000;
    END IF;
    IF p_desired IS NULL OR pg_catalog.jsonb_typeof(p_desired) OPERATOR(pg_catalog.<>) 'object' THEN
        RETURN v_score;
    END IF;
    FOR v_label IN SELECT e.k, e.v FROM pg_catalog.jsonb_each(p_desired) AS e(k, v) LOOP
        v_ok := hatchet._label_matches(p_worker_labels, v_label.k, v_label.v);
        IF NOT v_ok AND coalesce((v_label.v OPERATOR(pg_catalog.->>) 'required')::boolean, true) THEN
            RETURN NULL;
        END IF;
        IF v_ok THEN
            v_score := v_score OPERATOR(pg_catalog.+)
                       coalesce((v_label.v OPERATOR(pg_catalog.->>) 'weight')::integer, 100);
        END IF;
    END LOOP;
    RETURN v_score;
END
$$;

ALTER FUNCTION hatchet._iso_utc(timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.create_cron(text, text, text, jsonb, jsonb, integer, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.delete_cron(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.list_crons(text, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.schedule(text, timestamptz, jsonb, jsonb, integer, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.delete_schedule(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.list_schedules(text, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._run_time_triggers(timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._push_events(uuid, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._check_event(text, text, jsonb, jsonb, text, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.push_event(text, jsonb, jsonb, text, uuid, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.push_events(jsonb, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.list_events(text[], timestamptz, timestamptz, integer, integer, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.create_filter(text, text, text, jsonb, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.delete_filter(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.list_filters(text, uuid, uuid[], uuid[], text[], integer, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.create_workflow_filter(uuid, text, text, jsonb, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.update_filter(uuid, text, text, jsonb, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._concurrency_option(text, text, integer, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._admit(uuid, uuid, timestamptz, integer, integer, integer, integer, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._try_lock_holder(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._cancel_holder(uuid, uuid, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._release_slots(uuid, uuid[]) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._rate_limits_option(jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._rate_limit_window(text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.put_rate_limit(text, integer, text, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.pause_rate_limit(text, timestamptz, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._take_rate_limits(uuid, jsonb, timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._apply_rate_limits(uuid, tid[], timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.list_rate_limits(text, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.partitioned_tables() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._reap_timeouts(uuid, timestamptz, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._expire_queued(uuid, timestamptz, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._reap_dead_workers(uuid, timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.prune_stream_chunks(interval, interval) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.run_maintenance() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._check_payload(text, jsonb, boolean) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._check_run_options(jsonb, jsonb, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._check_page(integer, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._json_int(jsonb, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._clean_metadata(jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._lock_runs(uuid[]) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._lock_pending_runs(uuid, uuid[]) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._run_row(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._task_output(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._task_outcome(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._cel_bool(text, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._match_action(jsonb, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._number_conditions(jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._parent_conditions(hatchet.task_definitions) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._wait_conditions(hatchet.task_definitions, timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._on_failure_conditions(uuid, bigint) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._insert_match(uuid, uuid, bigint, uuid, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._task_input(uuid, hatchet.runs, hatchet.task_definitions, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._run_placement(uuid, hatchet.runs) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._queue_task(uuid, hatchet.runs, hatchet.task_definitions, uuid, jsonb, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._insert_finished_task(uuid, hatchet.runs, hatchet.task_definitions, uuid, hatchet.task_event_type, text, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._match_reason(jsonb, jsonb, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._next_attempt(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._replay_attempt(uuid, uuid, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._replay_finished(uuid, uuid, hatchet.task_event_type, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._fire_match(uuid, uuid, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._settle_match(uuid, uuid, jsonb, timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._advance(uuid, uuid[], uuid[], text[]) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._on_tasks_finished(uuid, uuid[], uuid[], text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._satisfy_match(uuid, uuid, text, timestamptz, text, text, jsonb, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._create_run(uuid, bigint, jsonb, jsonb, integer, text, jsonb, uuid, integer, text, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.run_workflow(text, jsonb, jsonb, integer, uuid, uuid, integer, text, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._count_cancelled(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.cancel_run(uuid, uuid, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.replay_tasks(uuid[], uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.run_status(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.run_tasks(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.run_events(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._run_view(uuid, hatchet.runs) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.run(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.list_runs(timestamptz, timestamptz, uuid[], jsonb, uuid, text[], uuid, uuid, integer, integer, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.run_children(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.finished_runs(uuid[], uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.find_runs_by_metadata(uuid, text, text, timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.put_stream_chunk(uuid, bytea, bigint, uuid, timestamptz) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.read_stream_chunks(uuid, bigint, uuid, interval) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.run_stream_state(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._check_task_options(text, integer, integer, float8, integer, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._enqueue_batch(uuid, text, jsonb[], integer, timestamptz, integer, float8, integer, interval, interval, text, jsonb, uuid[], uuid[], bigint, text, jsonb, jsonb, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.enqueue(text, jsonb, integer, timestamptz, integer, float8, integer, text, text, text, jsonb, uuid, text, integer, text, jsonb, jsonb, uuid, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.enqueue_many(text, jsonb[], integer, timestamptz, integer, float8, integer, text, text, jsonb, uuid, text, integer, text, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._finish_unstarted(uuid, uuid, timestamptz, integer, uuid, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._promote_due(uuid, text, timestamptz, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._claim_ready(uuid, text, integer, boolean) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.dequeue(text, text, integer, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._reject_stale(uuid, uuid, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._task_state(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._release(uuid, uuid[], text[], integer[], uuid[]) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.complete_many(uuid[], integer[], jsonb[], uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.complete(uuid, integer, jsonb, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._fail_attempt(uuid, hatchet.running, text, boolean, boolean) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.fail(uuid, integer, text, boolean, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.refresh_timeout(uuid, integer, text, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.cancel(uuid, uuid, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.task_status(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.task_events(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.task(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.running_attempt(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.put_log(uuid, text, text, integer, timestamptz, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.task_logs(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.default_tenant() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._check_webhook_auth(text, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._check_webhook_event(text, text, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.create_webhook(text, text, text, text, jsonb, text, jsonb, boolean, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.update_webhook(text, text, text, jsonb, boolean, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.delete_webhook(text, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.find_webhooks(uuid, text[], text[], integer, integer) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.receive_webhook(text, jsonb, jsonb, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.register_worker(text, text[], jsonb, jsonb, uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.heartbeat(uuid[], uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.set_worker_paused(uuid, boolean, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.upsert_worker_labels(uuid, jsonb, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.deregister_worker(uuid, text, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._placement_option(jsonb, uuid, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.assign(uuid[], integer, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.release_slot(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.list_workers(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.worker(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._enum_name(jsonb, text[], text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._json_texts(jsonb, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._json_object(jsonb, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._json_duration(jsonb, text, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._normalise_condition(text, text, text, bigint, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._normalise_conditions(text, text, text[], jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._normalise_task(text, jsonb, boolean) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._normalise_concurrency(text, text, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._normalise_workflow(jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.register_workflow(jsonb, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._latest_version(uuid, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._strategy_name(jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._duration_name(jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet._definition_flow(uuid, bigint, jsonb, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION hatchet.list_workflows(text, uuid, uuid) SET search_path = pg_catalog, pg_temp;

-- ---------------------------------------------------------------------------------------------------------------------
-- Workflow-level concurrency over runs of several tasks (issue 20):
--   * _release_slots: once a waiter's run holds a workflow-level key, the run's other tasks waiting for that key are
--     admitted too (they pass the gate their run holds and need no room); before, they waited until the schedule
--     timeout and the run kept its slot meanwhile (sql/flow_control.sql).
--   * _create_run: a run's pending matches are created before its root tasks are queued, so a root task that ends at
--     admission (a CANCEL_NEWEST key) cancels its children and the run ends (sql/runs.sql).
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet._release_slots(p_tenant uuid, p_task_ids uuid[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_freed record;
    v_wait  hatchet.concurrency_queue;
    v_sibling hatchet.concurrency_queue;
    v_room  integer;
BEGIN
    FOR v_freed IN
        WITH gone AS (
            DELETE FROM hatchet.concurrency_slots s
            WHERE s.tenant_id = p_tenant AND s.task_id = ANY (p_task_ids)
            RETURNING s.scope, s.key
        )
        SELECT g.scope, g.key, count(*)::integer AS n FROM gone g GROUP BY g.scope, g.key ORDER BY g.scope, g.key
    LOOP
        UPDATE hatchet.concurrency_groups g SET running = g.running - v_freed.n
        WHERE g.tenant_id = p_tenant AND g.scope = v_freed.scope AND g.key = v_freed.key
        RETURNING g.max_runs - g.running INTO v_room;
        -- Fill the freed room from the waiters of this key, highest priority (retries) first, then arrival order.
        WHILE coalesce(v_room, 0) > 0 LOOP
            DELETE FROM hatchet.concurrency_queue q
            WHERE q.ctid = (SELECT x.ctid FROM hatchet.concurrency_queue x
                            WHERE x.tenant_id = p_tenant AND x.scope = v_freed.scope AND x.key = v_freed.key
                            ORDER BY x.priority DESC, x.id LIMIT 1
                            FOR UPDATE SKIP LOCKED)
            RETURNING q.* INTO v_wait;
            EXIT WHEN NOT FOUND;
            PERFORM hatchet._admit(p_tenant, v_wait.task_id, v_wait.task_inserted_at, v_wait.retry_count,
                                   v_wait.app_retry_count, v_wait.internal_retry_count, v_wait.priority, v_wait.stage);
            -- A workflow-level key counts runs: once this waiter's run holds the slot, its other tasks waiting for
            -- the key pass the gate their run holds and need no room. Left waiting, they would keep the run (and
            -- so the slot) from ever finishing.
            IF v_wait.run_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM hatchet.concurrency_slots s
                WHERE s.tenant_id = p_tenant AND s.task_id = v_wait.run_id AND s.scope = v_freed.scope
                  AND s.key = v_freed.key) THEN
                LOOP
                    DELETE FROM hatchet.concurrency_queue q
                    WHERE q.ctid = (SELECT x.ctid FROM hatchet.tasks t
                                    JOIN hatchet.concurrency_queue x ON x.tenant_id = t.tenant_id AND x.task_id = t.id
                                    WHERE t.tenant_id = p_tenant AND t.run_id = v_wait.run_id
                                      AND t.inserted_at >= hatchet.uuid_time(v_wait.run_id)
                                      AND x.scope = v_freed.scope AND x.key = v_freed.key
                                    ORDER BY x.priority DESC, x.id LIMIT 1
                                    FOR UPDATE OF x SKIP LOCKED)
                    RETURNING q.* INTO v_sibling;
                    EXIT WHEN NOT FOUND;
                    PERFORM hatchet._admit(p_tenant, v_sibling.task_id, v_sibling.task_inserted_at,
                                           v_sibling.retry_count, v_sibling.app_retry_count,
                                           v_sibling.internal_retry_count, v_sibling.priority, v_sibling.stage);
                END LOOP;
            END IF;
            SELECT g.max_runs - g.running INTO v_room FROM hatchet.concurrency_groups g
            WHERE g.tenant_id = p_tenant AND g.scope = v_freed.scope AND g.key = v_freed.key;
        END LOOP;
    END LOOP;
END
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
BEGIN
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
