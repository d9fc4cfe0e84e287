-- pg_hatchet 0.3.0 -> 0.4.0 (docs/releasing.md). One section per topic; each CREATE OR REPLACE carries the same
-- text as sql/*.sql, and when a function appears twice the last copy is the one that counts.
\echo Use "ALTER EXTENSION pg_hatchet UPDATE TO '0.4.0'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------------------------------
-- 1. Privileges as a function (sql/security.sql): hatchet._grant_api applies the grant lists to every function that
--    exists; 0.3.0 ran the same statements once in a DO block.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet._grant_api() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_app      text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'app');
    v_consumer text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'consumer');
    v_server   text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'server');
    v_admin    text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'admin');
    -- Exactly what each kind calls; the server and admin roles get every API function (no leading _) but these.
    c_app      text[] := ARRAY['default_tenant', 'my_tenants', 'enqueue', 'enqueue_many', 'run_workflow', 'schedule',
                               'push_event', 'push_events', 'cancel', 'cancel_run', 'replay_tasks', 'task_status',
                               'task', 'task_events', 'task_logs', 'run_status', 'run', 'run_tasks', 'run_events',
                               'run_children', 'run_shape', 'list_runs', 'finished_runs', 'find_runs_by_metadata',
                               'list_events', 'read_stream_chunks', 'run_stream_state'];
    c_consumer text[] := ARRAY['default_tenant', 'my_tenants', 'dequeue', 'complete', 'complete_many', 'fail',
                               'refresh_timeout', 'running_attempt', 'put_log', 'put_stream_chunk', 'task_status',
                               'task'];
    c_superuser_only text[] := ARRAY['run_maintenance', 'maintain_partitions'];
    c_admin_only     text[] := ARRAY['create_tenant', 'grant_tenant', 'revoke_tenant', 'list_tenant_grants'];
    c_server_only    text[] := ARRAY['find_webhooks'];  -- returns webhook credentials
    v_fn   regprocedure;
    v_name text;
BEGIN
    REVOKE ALL ON ALL TABLES IN SCHEMA hatchet FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA hatchet FROM PUBLIC;
    REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA hatchet FROM PUBLIC;
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA hatchet TO %s, %s, %s, %s', v_app, v_consumer, v_server, v_admin);

    FOR v_fn, v_name IN
        SELECT p.oid::regprocedure, p.proname FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'hatchet'::regnamespace AND p.prokind IN ('f', 'p')
        ORDER BY p.oid
    LOOP
        IF v_name = ANY (c_app) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_app);
        END IF;
        IF v_name = ANY (c_consumer) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_consumer);
        END IF;
        CONTINUE WHEN v_name LIKE '\_%' OR v_name = ANY (c_superuser_only);
        IF NOT v_name = ANY (c_admin_only) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_server);
        END IF;
        IF NOT v_name = ANY (c_server_only) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_admin);
        END IF;
    END LOOP;

    -- The server's own statements (hatchet-server/src/db/tenants.rs, db/maintenance.rs): token secrets and API
    -- tokens, and the queue depth gauge. Only the server role may read token_secret.
    EXECUTE pg_catalog.format('GRANT SELECT, UPDATE (token_secret) ON hatchet.tenants TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE ON hatchet.api_tokens TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT ON hatchet.ready_queue TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT (tenant_id, name, created_at) ON hatchet.tenants TO %s', v_admin);
END
$$;
COMMENT ON FUNCTION hatchet._grant_api() IS
    'revokes everything from PUBLIC and grants each group role exactly its API (run at install and by every upgrade)';


-- ---------------------------------------------------------------------------------------------------------------------
-- 2. Paused workflows (issue 20): hatchet.pause_workflow / unpause_workflow (held queues, queue TTL, DROP for
--    crons and schedules) and hatchet.delete_workflow; hatchet.assign skips paused queues and returns a child
--    run's parent run (parent_run_id, a new column: dropped and created again).
-- ---------------------------------------------------------------------------------------------------------------------

-- How a pause behaves, kept on the workflow while it lasts (all NULL while it is not paused).
ALTER TABLE hatchet.workflows
    ADD COLUMN paused_at timestamptz,
    -- queued attempts held longer than this (counted from when they were created, or from the pause if later) are
    -- cancelled; NULL: held until unpaused
    ADD COLUMN paused_queue_ttl interval,
    -- what a cron tick or a one-off schedule of the workflow does while it is paused: QUEUE (create the run, held
    -- like any other) or DROP (create nothing)
    ADD COLUMN paused_cron_behavior text,
    ADD COLUMN paused_scheduled_behavior text,
    ADD CONSTRAINT paused_behaviors_known
        CHECK (paused_cron_behavior IN ('QUEUE', 'DROP') AND paused_scheduled_behavior IN ('QUEUE', 'DROP')),
    ADD CONSTRAINT paused_queue_ttl_positive CHECK (paused_queue_ttl > interval '0');
COMMENT ON COLUMN hatchet.workflows.paused_at IS 'when the workflow was paused (NULL: not paused)';

-- The queues (task actions) of paused workflows, for every version: hatchet.assign skips them, so their attempts
-- stay queued. One primary-key probe per served queue keeps the check off the per-task path.
CREATE TABLE hatchet.paused_queues (
    tenant_id   uuid   NOT NULL,
    queue       text   NOT NULL,
    workflow_id bigint NOT NULL,
    CONSTRAINT paused_queues_pkey PRIMARY KEY (tenant_id, queue),
    CONSTRAINT paused_queues_workflow_fkey FOREIGN KEY (tenant_id, workflow_id)
        REFERENCES hatchet.workflows (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE hatchet.paused_queues IS 'queues of paused workflows: nothing on them is assigned until unpaused';

CREATE OR REPLACE FUNCTION hatchet._workflow_for_update(p_tenant uuid, p_workflow uuid) RETURNS hatchet.workflows
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

CREATE OR REPLACE FUNCTION hatchet.pause_workflow(
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

CREATE OR REPLACE FUNCTION hatchet.unpause_workflow(workflow_id uuid, tenant_id uuid DEFAULT NULL) RETURNS uuid
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

CREATE OR REPLACE FUNCTION hatchet._paused_drops(p_tenant uuid, p_workflow bigint, p_kind text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT w.is_paused AND CASE p_kind WHEN 'cron' THEN w.paused_cron_behavior
                                                        ELSE w.paused_scheduled_behavior END = 'DROP'
                     FROM hatchet.workflows w WHERE w.tenant_id = p_tenant AND w.id = p_workflow), false)
$$;

CREATE OR REPLACE FUNCTION hatchet.delete_workflow(workflow_id uuid, tenant_id uuid DEFAULT NULL) RETURNS uuid
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

CREATE OR REPLACE FUNCTION hatchet.register_workflow(definition jsonb, tenant_id uuid DEFAULT NULL) RETURNS uuid
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
                                              worker_labels, conditions, slot_type, slot_units)
        VALUES (p_tenant, v_version, v_task->>'readable_id', v_task->>'action',
                ARRAY(SELECT jsonb_array_elements_text(v_task->'parents')), (v_task->>'is_on_failure')::boolean,
                (v_task->>'is_durable')::boolean, (v_task->>'retries')::integer,
                (v_task->>'backoff_factor')::float8, (v_task->>'backoff_max_seconds')::integer,
                hatchet.parse_duration(v_task->>'timeout'), hatchet.parse_duration(v_task->>'schedule_timeout'),
                coalesce(v_task->'concurrency', '[]'), coalesce(v_task->'rate_limits', '[]'),
                coalesce(v_task->'worker_labels', '{}'), coalesce(v_task->'conditions', '{}'),
                v_slot.key, v_slot.units);
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

CREATE OR REPLACE FUNCTION hatchet._run_view(p_tenant uuid, p_run hatchet.runs)
RETURNS TABLE (id uuid, status text, input jsonb, additional_metadata jsonb, created_at timestamptz,
               workflow_name text, workflow_id uuid, workflow_version_id uuid, parent_task_id uuid,
               triggered_by text, children bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT p_run.id, hatchet.run_status(p_run.id, p_tenant), p_run.input, p_run.additional_metadata, p_run.inserted_at,
           w.name, w.external_id, v.external_id, p_run.parent_task_id, p_run.triggered_by,
           (SELECT count(*) FROM hatchet.runs c
            WHERE c.tenant_id = p_tenant AND c.parent_task_id IN
                  (SELECT t.id FROM hatchet.tasks t
                   WHERE t.tenant_id = p_tenant AND t.run_id = p_run.id AND t.inserted_at >= p_run.inserted_at))
    -- (outer joins: a run of a deleted workflow (hatchet.delete_workflow) is still a run, with NULL workflow columns)
    FROM (SELECT) AS one
    LEFT JOIN hatchet.workflow_versions v ON v.tenant_id = p_tenant AND v.id = p_run.workflow_version_id
    LEFT JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id;
END
$$;

DROP FUNCTION hatchet.assign(uuid[], integer, uuid);

CREATE OR REPLACE FUNCTION hatchet.assign(
    worker_ids uuid[]  DEFAULT NULL,
    max_tasks  integer DEFAULT 100,
    tenant_id  uuid    DEFAULT NULL
) RETURNS TABLE (worker_id uuid, task_id uuid, retry_count integer, queue text, input jsonb,
                 additional_metadata jsonb, priority integer, run_id uuid, readable_id text,
                 task_inserted_at timestamptz, timeout_at timestamptz, queued_at timestamptz, parent_run_id uuid)
LANGUAGE plpgsql
SECURITY DEFINER
-- As hatchet.dequeue: claimed rows are deleted by TID scan at any queue size, and one generic plan serves every call.
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(assign.tenant_id);
    v_now    timestamptz := clock_timestamp();
    v_after  interval := make_interval(secs => coalesce(current_setting('hatchet.worker_dead_after_ms', true)::integer,
                                                         30000) / 1000.0);
    v_left   integer := assign.max_tasks;
    v_queue  text;
    v_cap    integer;
    v_ctids  tid[];
    v_any_rl boolean;
    v_cand   record;
    v_w      integer;
    v_best   integer;
    v_best_score bigint;
    v_score  bigint;
    -- worker state for this call, indexed in parallel
    w_ids    uuid[];
    w_labels jsonb[];
    w_types  text[];
    w_free   integer[];
    w_actions text[][];
    a_ctids  tid[] := '{}';
    a_workers uuid[] := '{}';
    a_types text[] := '{}';
    a_units integer[] := '{}';
BEGIN
    IF assign.max_tasks IS NULL OR assign.max_tasks NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('max_tasks must be between 1 and 10000, not %s', coalesce(assign.max_tasks::text, 'null'))]);
    END IF;
    IF EXISTS (SELECT 1 FROM hatchet.delayed_queue d WHERE d.tenant_id = p_tenant AND d.ready_at <= v_now) THEN
        PERFORM hatchet._promote_due(p_tenant, NULL, v_now, 1000);
    END IF;

    -- Free capacity per (worker, slot type) of live workers, read after locking their worker_slots rows (in the
    -- global lock order): two assigners never hand out the same slot, and the CHECK on used <= capacity backs it up.
    PERFORM 1 FROM hatchet.worker_slots s
    JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
    WHERE s.tenant_id = p_tenant AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after
      AND (assign.worker_ids IS NULL OR s.worker_id = ANY (assign.worker_ids))
    ORDER BY s.worker_id, s.slot_type
    FOR UPDATE OF s;
    SELECT array_agg(s.worker_id ORDER BY s.worker_id, s.slot_type), array_agg(w.labels ORDER BY s.worker_id, s.slot_type),
           array_agg(s.slot_type ORDER BY s.worker_id, s.slot_type),
           array_agg(s.capacity - s.used ORDER BY s.worker_id, s.slot_type)
    INTO w_ids, w_labels, w_types, w_free
    FROM hatchet.worker_slots s
    JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
    WHERE s.tenant_id = p_tenant AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after
      AND (assign.worker_ids IS NULL OR s.worker_id = ANY (assign.worker_ids))
      AND s.capacity > s.used;
    IF w_ids IS NULL THEN
        RETURN;
    END IF;

    FOR v_queue IN
        SELECT x.action
        FROM (SELECT DISTINCT a.action FROM hatchet.worker_actions a
              WHERE a.tenant_id = p_tenant AND a.worker_id = ANY (w_ids)) x
        -- A scalar subquery, not EXISTS: the planner may turn an EXISTS into a join that aggregates the whole ready
        -- queue (cost growing with the backlog); this stays one index probe per served queue.
        WHERE (SELECT true FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.queue = x.action LIMIT 1)
          -- A paused workflow's queues keep their attempts until it is unpaused (hatchet.pause_workflow).
          AND NOT EXISTS (SELECT 1 FROM hatchet.paused_queues p WHERE p.tenant_id = p_tenant AND p.queue = x.action)
        ORDER BY x.action
    LOOP
        EXIT WHEN v_left <= 0;
        -- How many this queue could take at most: the free default-type slots of workers serving it.
        SELECT coalesce(sum(w_free[i]), 0) INTO v_cap
        FROM generate_subscripts(w_ids, 1) AS i
        WHERE EXISTS (SELECT 1 FROM hatchet.worker_actions a
                      WHERE a.tenant_id = p_tenant AND a.worker_id = w_ids[i] AND a.action = v_queue);
        CONTINUE WHEN v_cap <= 0;
        -- Unbounded: rows this call locks but leaves (no eligible worker) stay ready, and later calls must see them.
        SELECT c.ctids, c.any_rate_limited INTO v_ctids, v_any_rl
        FROM hatchet._claim_ready(p_tenant, v_queue, least(v_cap, v_left), false) c;
        CONTINUE WHEN v_ctids IS NULL;

        FOR v_cand IN
            SELECT r.ctid AS rctid, r.task_id, r.rate_limited, t.desired_labels, t.sticky, t.desired_worker_id,
                   t.slot_type, t.slot_units, t.rate_limits
            FROM hatchet.ready_queue r
            CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = r.tenant_id AND x.inserted_at = r.task_inserted_at AND x.id = r.task_id) t
            WHERE r.ctid = ANY (v_ctids)
            ORDER BY r.priority DESC, r.fair_rank, r.id
        LOOP
            EXIT WHEN v_left <= 0;
            v_best := NULL;
            v_best_score := NULL;
            FOR v_w IN 1 .. cardinality(w_ids) LOOP
                CONTINUE WHEN w_types[v_w] <> v_cand.slot_type OR w_free[v_w] < v_cand.slot_units;
                CONTINUE WHEN NOT EXISTS (SELECT 1 FROM hatchet.worker_actions a
                                          WHERE a.tenant_id = p_tenant AND a.worker_id = w_ids[v_w]
                                            AND a.action = v_queue);
                v_score := hatchet._worker_score(w_ids[v_w], w_labels[v_w], v_cand.desired_labels, v_cand.sticky,
                                                 v_cand.desired_worker_id);
                CONTINUE WHEN v_score IS NULL;
                IF v_best IS NULL OR v_score > v_best_score
                   OR (v_score = v_best_score AND w_free[v_w] > w_free[v_best]) THEN
                    v_best := v_w;
                    v_best_score := v_score;
                END IF;
            END LOOP;
            CONTINUE WHEN v_best IS NULL; -- no eligible worker now: it stays queued (until schedule timeout)
            -- A call for some workers only (the server assigns to the workers whose completions it just applied)
            -- leaves a SOFT-sticky task to its desired worker when that one is outside the call, alive and has room:
            -- the next call that includes it takes it. SOFT only falls back to others when its worker is full.
            IF v_cand.sticky = 'SOFT' AND assign.worker_ids IS NOT NULL AND v_cand.desired_worker_id IS NOT NULL
               AND NOT (v_cand.desired_worker_id = ANY (w_ids)) AND EXISTS (
                   SELECT 1 FROM hatchet.worker_slots s
                   JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
                   JOIN hatchet.worker_actions a ON a.tenant_id = s.tenant_id AND a.worker_id = s.worker_id
                                                AND a.action = v_queue
                   WHERE s.tenant_id = p_tenant AND s.worker_id = v_cand.desired_worker_id
                     AND s.slot_type = v_cand.slot_type AND s.capacity - s.used >= v_cand.slot_units
                     AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after) THEN
                CONTINUE;
            END IF;
            IF v_cand.rate_limited THEN
                IF NOT (hatchet._apply_rate_limits(p_tenant, ARRAY[v_cand.rctid], v_now) @> ARRAY[v_cand.rctid]) THEN
                    CONTINUE; -- parked until its window refills, or failed: the rest of the queue goes on
                END IF;
            END IF;
            w_free[v_best] := w_free[v_best] - v_cand.slot_units;
            a_ctids := a_ctids || v_cand.rctid;
            a_workers := a_workers || w_ids[v_best];
            a_types := a_types || v_cand.slot_type;
            a_units := a_units || v_cand.slot_units;
            v_left := v_left - 1;
        END LOOP;
    END LOOP;

    IF cardinality(a_ctids) = 0 THEN
        RETURN;
    END IF;

    UPDATE hatchet.worker_slots s SET used = s.used + u.units
    FROM (SELECT w, st, sum(n)::integer AS units FROM unnest(a_workers, a_types, a_units) AS x(w, st, n)
          GROUP BY w, st) u
    WHERE s.tenant_id = p_tenant AND s.worker_id = u.w AND s.slot_type = u.st;

    RETURN QUERY
    WITH pick AS (
        SELECT * FROM unnest(a_ctids, a_workers, a_types, a_units) AS p(rctid, worker_id, slot_type, slot_units)
    ), claimed AS (
        DELETE FROM hatchet.ready_queue r USING pick p
        WHERE r.ctid = p.rctid
        RETURNING r.*, p.worker_id AS assigned_worker, p.slot_type AS assigned_slot_type, p.slot_units AS assigned_units
    ), work AS (
        SELECT c.*, t.input, t.additional_metadata, t.readable_id, t.inserted_at AS queued_at,
               v_now + t.execution_timeout AS timeout_at
        FROM claimed c
        CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = c.tenant_id AND x.inserted_at = c.task_inserted_at AND x.id = c.task_id) t
    ), run AS (
        INSERT INTO hatchet.running (tenant_id, task_id, task_inserted_at, assigned_at, timeout_at, retry_count,
                                     app_retry_count, internal_retry_count, slot_units, priority, queue, worker_id,
                                     slot_type, concurrency_key, run_id, task_definition_id)
        SELECT w.tenant_id, w.task_id, w.task_inserted_at, v_now, w.timeout_at, w.retry_count, w.app_retry_count,
               w.internal_retry_count, w.assigned_units, w.priority, w.queue, w.assigned_worker, w.assigned_slot_type,
               w.concurrency_key, w.run_id, w.task_definition_id
        FROM work w
    )
    -- (no ASSIGNED event row: hatchet.task_events() derives it from `running`, then from the attempt's final event)
    SELECT w.assigned_worker, w.task_id, w.retry_count, w.queue, w.input, w.additional_metadata, w.priority::integer,
           w.run_id, w.readable_id, w.task_inserted_at, w.timeout_at, w.queued_at,
           -- a child run's parent: the run of the task that spawned it (the SDKs' parent workflow run id). The
           -- task's run is run_id, or the task itself for a single-task run (run_id NULL here); a task enqueued on
           -- its own has no runs row.
           (SELECT p.run_id FROM hatchet.runs r
            JOIN hatchet.tasks p ON p.tenant_id = r.tenant_id AND p.inserted_at = hatchet.uuid_time(r.parent_task_id)
                                AND p.id = r.parent_task_id
            WHERE r.tenant_id = w.tenant_id AND r.inserted_at = hatchet.uuid_time(coalesce(w.run_id, w.task_id))
              AND r.id = coalesce(w.run_id, w.task_id))
    FROM work w
    ORDER BY w.assigned_worker, w.priority DESC, w.fair_rank, w.id;
END
$$;
COMMENT ON FUNCTION hatchet.assign(uuid[], integer, uuid) IS
    'assign ready attempts to free slots of live workers (labels, sticky, slot cost, rate limits); returns the assignments';

CREATE OR REPLACE FUNCTION hatchet._cancel_ready(p_tenant uuid, p_ctids tid[], p_now timestamptz, p_reason text) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
    v_dag_tasks uuid[];
    v_dag_runs uuid[];
    v_keyed uuid[];
BEGIN
    WITH gone AS (
        DELETE FROM hatchet.ready_queue r
        WHERE r.ctid = ANY (p_ctids)
        RETURNING r.*
    ), ev AS (
        INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                         reason)
        SELECT p_tenant, g.task_inserted_at, g.task_id, p_now, g.retry_count, 'CANCELLED', p_reason
        FROM gone g
    ), idem AS (
        DELETE FROM hatchet.idempotency_keys k USING gone g WHERE k.tenant_id = p_tenant AND k.task_id = g.task_id
    )
    SELECT count(*), array_agg(g.task_id) FILTER (WHERE g.run_id IS NOT NULL),
           array_agg(g.run_id) FILTER (WHERE g.run_id IS NOT NULL),
           array_agg(g.task_id) FILTER (WHERE g.concurrency_key IS NOT NULL)
    INTO n, v_dag_tasks, v_dag_runs, v_keyed FROM gone g;
    PERFORM hatchet._lock_pending_runs(p_tenant, v_dag_runs);
    IF v_keyed IS NOT NULL THEN
        PERFORM hatchet._release_slots(p_tenant, v_keyed);
    END IF;
    IF v_dag_tasks IS NOT NULL THEN
        PERFORM hatchet._on_tasks_finished(p_tenant, v_dag_tasks, v_dag_runs, 'CANCELLED');
    END IF;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION hatchet._expire_queued(p_tenant uuid, p_now timestamptz, p_limit integer) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
    v_wait hatchet.concurrency_queue;
BEGIN
    n := hatchet._cancel_ready(p_tenant, ARRAY(
            SELECT x.ctid FROM hatchet.ready_queue x
            WHERE x.tenant_id = p_tenant AND x.schedule_timeout_at <= p_now
            ORDER BY x.schedule_timeout_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED),
        p_now, 'SCHEDULING_TIMED_OUT: no worker started the task within its schedule timeout');
    IF EXISTS (SELECT 1 FROM hatchet.paused_queues q WHERE q.tenant_id = p_tenant) THEN
        n := n + hatchet._cancel_ready(p_tenant, ARRAY(
                SELECT x.ctid FROM hatchet.paused_queues q
                JOIN hatchet.workflows w ON w.tenant_id = q.tenant_id AND w.id = q.workflow_id
                JOIN hatchet.ready_queue x ON x.tenant_id = q.tenant_id AND x.queue = q.queue
                WHERE q.tenant_id = p_tenant AND w.paused_queue_ttl IS NOT NULL
                  AND greatest(x.task_inserted_at, w.paused_at) + w.paused_queue_ttl <= p_now
                LIMIT p_limit
                FOR UPDATE OF x SKIP LOCKED),
            p_now, 'CANCELLED: the workflow is paused and the task was queued longer than its queue TTL');
    END IF;
    -- Attempts that waited too long for a concurrency slot time out the same way.
    FOR v_wait IN
        DELETE FROM hatchet.concurrency_queue q
        WHERE q.ctid = ANY (ARRAY(
            SELECT x.ctid FROM hatchet.concurrency_queue x
            WHERE x.tenant_id = p_tenant AND x.schedule_timeout_at <= p_now
            ORDER BY x.schedule_timeout_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED))
        RETURNING q.*
    LOOP
        PERFORM hatchet._finish_unstarted(p_tenant, v_wait.task_id, v_wait.task_inserted_at, v_wait.retry_count,
            v_wait.run_id, 'CANCELLED',
            format('SCHEDULING_TIMED_OUT: waited longer than its schedule timeout for a slot of concurrency key "%s"',
                   v_wait.key));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION hatchet._tenant_time_triggers(p_tenant uuid, p_now timestamptz, p_limit integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now       timestamptz := p_now;
    v_limit     integer := p_limit;
    v_retention integer := coalesce(current_setting('hatchet.retention_days', true)::integer, 30);
    c           hatchet.crons;
    s           hatchet.scheduled_runs;
    m           record;
    v_version   bigint;
    v_run       uuid;
    v_next      timestamptz;
BEGIN
    -- Cron ticks. FOR UPDATE re-checks next_tick_at on the latest row version, so a tick a concurrent pass has
    -- just fired (and advanced) is not fired again; SKIP LOCKED leaves a cron another pass holds to that pass.
    FOR c IN
        SELECT x.* FROM hatchet.crons x
        WHERE x.tenant_id = p_tenant AND x.enabled AND x.next_tick_at <= v_now
        ORDER BY x.next_tick_at
        LIMIT v_limit
        FOR UPDATE SKIP LOCKED
    LOOP
        BEGIN
            SELECT v.id INTO STRICT v_version FROM hatchet.workflow_versions v
            WHERE v.tenant_id = p_tenant AND v.workflow_id = c.workflow_id ORDER BY v.id DESC LIMIT 1;
            -- A tick of a workflow paused with DROP for crons creates nothing (the tick still passes).
            IF NOT hatchet._paused_drops(p_tenant, c.workflow_id, 'cron') THEN
                PERFORM hatchet._create_run(p_tenant, v_version, c.input,
                    hatchet._clean_metadata(c.additional_metadata) || jsonb_build_object(
                        'hatchet__cron_name', c.name, 'hatchet__cron_expression', c.expression,
                        'hatchet__scheduled_at', hatchet._iso_utc(c.next_tick_at), 'hatchet__triggered_by', 'cron'),
                    c.priority, 'cron');
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pg_hatchet: cron % (%) skipped the tick due at %: %', c.name, c.id,
                hatchet._iso_utc(c.next_tick_at), SQLERRM;
        END;
        -- The next tick after now (not after the tick just fired): at most one catch-up run after downtime.
        v_next := hatchet.cron_next(c.expression, greatest(v_now, c.next_tick_at));
        UPDATE hatchet.crons x
        SET last_tick_at = c.next_tick_at, next_tick_at = coalesce(v_next, 'infinity'),
            enabled = v_next IS NOT NULL
        WHERE x.tenant_id = p_tenant AND x.id = c.id;
    END LOOP;

    -- One-off schedules.
    FOR s IN
        SELECT x.* FROM hatchet.scheduled_runs x
        WHERE x.tenant_id = p_tenant AND x.fired_run_id IS NULL AND x.error IS NULL AND x.run_at <= v_now
        ORDER BY x.run_at
        LIMIT v_limit
        FOR UPDATE SKIP LOCKED
    LOOP
        BEGIN
            SELECT v.id INTO STRICT v_version FROM hatchet.workflow_versions v
            WHERE v.tenant_id = p_tenant AND v.workflow_id = s.workflow_id ORDER BY v.id DESC LIMIT 1;
            IF hatchet._paused_drops(p_tenant, s.workflow_id, 'schedule') THEN
                -- Due while its workflow is paused with DROP for schedules: it fires no run, and says why.
                UPDATE hatchet.scheduled_runs x SET error = 'dropped: the workflow was paused when it was due'
                WHERE x.tenant_id = p_tenant AND x.id = s.id;
                CONTINUE;
            END IF;
            v_run := hatchet._create_run(p_tenant, v_version, s.input,
                hatchet._clean_metadata(s.additional_metadata) || jsonb_build_object(
                    'hatchet__scheduled_at', hatchet._iso_utc(s.run_at), 'hatchet__triggered_by', 'schedule'),
                s.priority, 'schedule');
            UPDATE hatchet.scheduled_runs x SET fired_run_id = v_run WHERE x.tenant_id = p_tenant AND x.id = s.id;
        EXCEPTION WHEN OTHERS THEN
            UPDATE hatchet.scheduled_runs x SET error = SQLERRM WHERE x.tenant_id = p_tenant AND x.id = s.id;
            RAISE WARNING 'pg_hatchet: schedule % could not fire: %', s.id, SQLERRM;
        END;
    END LOOP;

    -- Sleeps of pending matches. A run whose matches another transaction is changing right now is left to the
    -- next pass rather than waited for.
    FOR m IN
        SELECT x.id, x.run_id FROM hatchet.matches x
        WHERE x.tenant_id = p_tenant AND x.wake_at <= v_now
        ORDER BY x.wake_at
        LIMIT v_limit
    LOOP
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(1212240963, hashtext(m.run_id::text));
        BEGIN
            PERFORM hatchet._satisfy_match(p_tenant, m.id, 'sleep', v_now);
        EXCEPTION WHEN OTHERS THEN
            UPDATE hatchet.matches x SET wake_at = v_now + interval '5 seconds'
            WHERE x.tenant_id = p_tenant AND x.id = m.id;
            RAISE WARNING 'pg_hatchet: sleep of match % could not be completed: %', m.id, SQLERRM;
        END;
    END LOOP;

    -- Fired schedules are history: kept for the retention period after they fired (their run id's time), then
    -- deleted. A schedule fires after its run_at, so the index on run_at narrows the search.
    DELETE FROM hatchet.scheduled_runs x
    WHERE x.ctid = ANY (ARRAY(
        SELECT y.ctid FROM hatchet.scheduled_runs y
        WHERE y.tenant_id = p_tenant AND y.fired_run_id IS NOT NULL
          AND y.run_at < v_now - make_interval(days => v_retention)
          AND hatchet.uuid_time(y.fired_run_id) < v_now - make_interval(days => v_retention)
        LIMIT v_limit));
END
$$;
COMMENT ON FUNCTION hatchet._tenant_time_triggers(uuid, timestamptz, integer) IS
    'fire one tenant''s due cron ticks, schedules and sleeps (one run per tick, never twice)';


-- ---------------------------------------------------------------------------------------------------------------------
-- 3. Execution timeouts in Hatchet's words (issue 20): "Task exceeded timeout of 5s".
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet._timeout_reason(p_timeout interval) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('Task exceeded timeout of %ss', pg_catalog.trim_scale(extract(epoch FROM p_timeout)))
$$;

CREATE OR REPLACE FUNCTION hatchet._reap_timeouts(p_tenant uuid, p_now timestamptz, p_limit integer) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run hatchet.running;
    v_task record;
    n integer := 0;
BEGIN
    FOR v_run IN
        DELETE FROM hatchet.running r
        WHERE r.ctid = ANY (ARRAY(
            SELECT x.ctid FROM hatchet.running x
            WHERE x.tenant_id = p_tenant AND x.timeout_at <= p_now
            ORDER BY x.timeout_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED))
        RETURNING r.*
    LOOP
        SELECT t.execution_timeout INTO v_task FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.inserted_at = v_run.task_inserted_at AND t.id = v_run.task_id;
        INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                         worker_id, worker_name, reason)
        VALUES (p_tenant, v_run.task_inserted_at, v_run.task_id, p_now, v_run.retry_count, 'TIMED_OUT',
                v_run.worker_id, v_run.worker_name,
                hatchet._timeout_reason(v_task.execution_timeout));
        IF v_run.worker_id IS NOT NULL THEN
            PERFORM pg_notify('hatchet_cancel',
                              v_run.task_id::text || ':' || v_run.retry_count || ':' || v_run.worker_id::text);
        END IF;
        PERFORM hatchet._fail_attempt(p_tenant, v_run, hatchet._timeout_reason(v_task.execution_timeout), true);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;


-- ---------------------------------------------------------------------------------------------------------------------
-- 4. Worker labels given at trigger time (issue 20): hatchet.run_workflow(desired_worker_labels), kept on the
--    run (runs.desired_labels) for its later tasks.
-- ---------------------------------------------------------------------------------------------------------------------

-- Worker labels given when the run was triggered (hatchet.run_workflow's desired_worker_labels): every task of the
-- run that declares no labels of its own is placed by them, as Hatchet places a run triggered with labels.
ALTER TABLE hatchet.runs ADD COLUMN desired_labels jsonb;
COMMENT ON COLUMN hatchet.runs.desired_labels IS
    'worker labels given at trigger time ({label: {value, comparator, required, weight}}); NULL: none';

DROP FUNCTION hatchet.run_workflow(text, jsonb, jsonb, integer, uuid, uuid, integer, text, uuid);
DROP FUNCTION hatchet._create_run(uuid, bigint, jsonb, jsonb, integer, text, jsonb, uuid, integer, text, uuid);

CREATE OR REPLACE FUNCTION hatchet._trigger_labels(p_labels jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_out jsonb := '{}';
    v_l   record;
BEGIN
    IF p_labels IS NULL OR p_labels = '{}' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p_labels) <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_each(p_labels) AS e(k, v) WHERE jsonb_typeof(e.v) <> 'object') THEN
        PERFORM hatchet._placement_option(p_labels, NULL, NULL);  -- refuses it with the expected shape
    END IF;
    FOR v_l IN SELECT e.k, e.v FROM jsonb_each(p_labels) AS e(k, v) LOOP
        v_out := v_out || jsonb_build_object(v_l.k, jsonb_strip_nulls(jsonb_build_object(
            'value', coalesce(v_l.v -> 'int_value', v_l.v -> 'str_value', v_l.v -> 'value'),
            'comparator', upper(coalesce(v_l.v ->> 'comparator', 'EQUAL')),
            'required', coalesce((v_l.v ->> 'required')::boolean, false),
            'weight', coalesce((v_l.v ->> 'weight')::integer, 100))));
    END LOOP;
    PERFORM hatchet._placement_option(v_out, NULL, NULL);
    RETURN v_out;
END
$$;

CREATE OR REPLACE FUNCTION hatchet._create_run(
    p_tenant uuid, p_version bigint, p_input jsonb, p_metadata jsonb, p_priority integer, p_triggered_by text,
    p_triggers jsonb DEFAULT NULL, p_parent_task_id uuid DEFAULT NULL, p_child_index integer DEFAULT NULL,
    p_child_key text DEFAULT NULL, p_desired_worker_id uuid DEFAULT NULL, p_desired_labels jsonb DEFAULT NULL
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
                              parent_task_id, child_index, child_key, triggered_by, desired_labels)
    SELECT p_tenant, hatchet.uuid_time(v_id), v_id, p_version, p_input, p_metadata,
           coalesce(p_priority, v.default_priority), p_parent_task_id, p_child_index, p_child_key, p_triggered_by,
           p_desired_labels
    FROM hatchet.workflow_versions v WHERE v.tenant_id = p_tenant AND v.id = p_version
    RETURNING * INTO v_run;
    -- Root tasks go to the worker the trigger asked for (SOFT unless the workflow is HARD sticky); later tasks
    -- decide from the first task when they are queued (_run_placement).
    IF p_desired_worker_id IS NOT NULL THEN
        v_place := jsonb_build_object('desired_worker_id', p_desired_worker_id, 'sticky',
            coalesce((SELECT v.sticky FROM hatchet.workflow_versions v
                      WHERE v.tenant_id = p_tenant AND v.id = p_version), 'SOFT'::hatchet.sticky_strategy));
    END IF;
    -- Worker labels given at trigger time place the tasks that declare none of their own (the root tasks here, the
    -- others through _run_placement).
    IF p_desired_labels IS NOT NULL THEN
        v_place := v_place || jsonb_build_object('desired_labels', p_desired_labels);
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

CREATE OR REPLACE FUNCTION hatchet.run_workflow(
    name                text,
    input               jsonb   DEFAULT '{}',
    additional_metadata jsonb   DEFAULT '{}',
    priority            integer DEFAULT NULL,
    tenant_id           uuid    DEFAULT NULL,
    parent_task_id      uuid    DEFAULT NULL,
    child_index         integer DEFAULT NULL,
    child_key           text    DEFAULT NULL,
    desired_worker_id   uuid    DEFAULT NULL,
    desired_worker_labels jsonb DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(run_workflow.tenant_id);
    v_wf     record;
    v_id     uuid;
    v_labels jsonb := hatchet._trigger_labels(run_workflow.desired_worker_labels);
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
                               run_workflow.child_index, run_workflow.child_key, run_workflow.desired_worker_id,
                               v_labels);
END
$$;
COMMENT ON FUNCTION hatchet.run_workflow(text, jsonb, jsonb, integer, uuid, uuid, integer, text, uuid, jsonb) IS
    'run the latest version of a workflow: root tasks are queued (on desired_worker_id if given, on workers matching desired_worker_labels if given and the task declares none), the others wait for their parents and follow the workflow''s sticky strategy; returns the run id';

CREATE OR REPLACE FUNCTION hatchet._run_placement(p_tenant uuid, p_run hatchet.runs) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sticky hatchet.sticky_strategy;
    v_first  record;
    v_text   text;
    v_worker uuid;
    -- labels the run was triggered with, for the tasks that declare none
    v_labels jsonb := jsonb_strip_nulls(jsonb_build_object('desired_labels', p_run.desired_labels));
BEGIN
    SELECT v.sticky INTO v_sticky FROM hatchet.workflow_versions v
    WHERE v.tenant_id = p_tenant AND v.id = p_run.workflow_version_id;
    SELECT t.id, t.desired_worker_id, t.sticky INTO v_first FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.run_id = p_run.id AND t.inserted_at >= p_run.inserted_at
    ORDER BY t.inserted_at, t.id LIMIT 1;
    IF NOT FOUND OR (v_sticky IS NULL AND v_first.desired_worker_id IS NULL) THEN
        RETURN nullif(v_labels, '{}');
    END IF;
    IF v_sticky IS NOT NULL THEN
        SELECT e.worker INTO v_text FROM hatchet.task_events(v_first.id, p_tenant) e
        WHERE e.event_type = 'ASSIGNED' ORDER BY e.created_at DESC, e.retry_count DESC LIMIT 1;
        -- Only a registered worker (server path) can be pinned; a SQL consumer's free-form name cannot.
        IF v_text ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            SELECT w.id INTO v_worker FROM hatchet.workers w WHERE w.tenant_id = p_tenant AND w.id = v_text::uuid;
        END IF;
    END IF;
    v_worker := coalesce(v_worker, v_first.desired_worker_id);
    IF v_worker IS NULL THEN
        RETURN nullif(v_labels, '{}');
    END IF;
    RETURN jsonb_build_object('desired_worker_id', v_worker,
                              'sticky', coalesce(v_sticky, v_first.sticky, 'SOFT'::hatchet.sticky_strategy)) || v_labels;
END
$$;


-- ---------------------------------------------------------------------------------------------------------------------
-- 5. Task metrics (issue 20): hatchet.task_status_counts and hatchet.task_stats.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet.task_status_counts(
    since               timestamptz,
    until               timestamptz DEFAULT NULL,
    workflow_ids        uuid[]      DEFAULT NULL,
    parent_task_id      uuid        DEFAULT NULL,
    triggering_event_id uuid        DEFAULT NULL,
    tenant_id           uuid        DEFAULT NULL
) RETURNS TABLE (status text, count bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(task_status_counts.tenant_id);
    v_until  timestamptz := coalesce(task_status_counts.until, 'infinity');
    v_defs   bigint[];
BEGIN
    IF task_status_counts.since IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['since']);
    END IF;
    IF task_status_counts.workflow_ids IS NOT NULL THEN
        v_defs := ARRAY(SELECT d.id FROM hatchet.workflows w
                        JOIN hatchet.workflow_versions v ON v.tenant_id = w.tenant_id AND v.workflow_id = w.id
                        JOIN hatchet.task_definitions d ON d.tenant_id = v.tenant_id AND d.workflow_version_id = v.id
                        WHERE w.tenant_id = p_tenant AND w.external_id = ANY (task_status_counts.workflow_ids));
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT (hatchet._task_state(p_tenant, t.id)).state AS state
        FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.inserted_at >= task_status_counts.since AND t.inserted_at < v_until
          AND (v_defs IS NULL OR t.task_definition_id = ANY (v_defs))
          AND (task_status_counts.triggering_event_id IS NULL
               OR t.additional_metadata ->> 'hatchet__event_id' = task_status_counts.triggering_event_id::text)
          AND (task_status_counts.parent_task_id IS NULL OR EXISTS (
                   SELECT 1 FROM hatchet.runs r
                   WHERE r.tenant_id = p_tenant AND r.inserted_at = hatchet.uuid_time(t.run_id) AND r.id = t.run_id
                     AND r.parent_task_id = task_status_counts.parent_task_id))
    )
    SELECT s.name::text, count(p.state)
    FROM unnest(enum_range(NULL::hatchet.readable_status)) AS s(name)
    LEFT JOIN picked p ON p.state = s.name::text
    GROUP BY s.name
    ORDER BY s.name;
END
$$;
COMMENT ON FUNCTION hatchet.task_status_counts(timestamptz, timestamptz, uuid[], uuid, uuid, uuid) IS
    'tasks created in a time window by readable status (all five, zeros included), optionally by workflow, parent task or triggering event';

CREATE OR REPLACE FUNCTION hatchet.task_stats(tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_name text, state text, queue text, count bigint, oldest timestamptz,
               oldest_excluding_retries timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(task_stats.tenant_id);
BEGIN
    RETURN QUERY
    WITH flight AS (
        SELECT 'QUEUED' AS state, r.queue, r.task_id, r.task_inserted_at, r.retry_count, r.task_definition_id
        FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant
        UNION ALL
        SELECT 'QUEUED', d.queue, d.task_id, d.task_inserted_at, d.retry_count, d.task_definition_id
        FROM hatchet.delayed_queue d WHERE d.tenant_id = p_tenant
        UNION ALL
        SELECT 'QUEUED', c.queue, c.task_id, c.task_inserted_at, c.retry_count, c.task_definition_id
        FROM hatchet.concurrency_queue c WHERE c.tenant_id = p_tenant
        UNION ALL
        SELECT 'RUNNING', x.queue, x.task_id, x.task_inserted_at, x.retry_count, x.task_definition_id
        FROM hatchet.running x WHERE x.tenant_id = p_tenant
    )
    SELECT coalesce(d.readable_id, f.queue), f.state, f.queue, count(*), min(f.task_inserted_at),
           min(f.task_inserted_at) FILTER (WHERE f.retry_count = 0)
    FROM flight f
    LEFT JOIN hatchet.task_definitions d ON d.tenant_id = p_tenant AND d.id = f.task_definition_id
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3;
END
$$;
COMMENT ON FUNCTION hatchet.task_stats(uuid) IS
    'queued and running tasks now, per task name, state and queue: how many and the oldest';


-- ---------------------------------------------------------------------------------------------------------------------
-- 6. Events by id (issue 20): hatchet.events_by_id (event.get, event.list(event_ids), ReplaySingleEvent).
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet.events_by_id(event_ids uuid[], tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, key text, payload jsonb, additional_metadata jsonb, scope text, created_at timestamptz,
               runs jsonb)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(events_by_id.tenant_id);
BEGIN
    IF cardinality(events_by_id.event_ids) > 1000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('at most 1000 event ids at once, not %s', cardinality(events_by_id.event_ids))]);
    END IF;
    RETURN QUERY
    SELECT e.id, e.key, e.payload, e.additional_metadata, e.scope, e.inserted_at,
           coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'status', hatchet.run_status(r.id, p_tenant))
                                      ORDER BY r.id)
                     FROM hatchet.runs r
                     WHERE r.tenant_id = e.tenant_id AND r.inserted_at >= e.inserted_at
                       AND r.additional_metadata ->> 'hatchet__event_id' = e.id::text), '[]')
    FROM unnest(events_by_id.event_ids) WITH ORDINALITY AS x(event_id, ord)
    JOIN hatchet.events e ON e.tenant_id = p_tenant AND e.inserted_at = hatchet.uuid_time(x.event_id)
                         AND e.id = x.event_id
    ORDER BY x.ord;
END
$$;
COMMENT ON FUNCTION hatchet.events_by_id(uuid[], uuid) IS
    'events by id, in the order given, with the runs each triggered; unknown ids are left out';


-- ---------------------------------------------------------------------------------------------------------------------
-- Last: privileges for everything this script created (keep this the final statement).
-- ---------------------------------------------------------------------------------------------------------------------

SELECT hatchet._grant_api();
