-- pg_hatchet: read functions for the server's REST API and its run watcher (workers, runs, workflows, events, rate
-- limits). Each takes the tenant and only ever returns that tenant's rows. They only read; task timelines are read
-- through hatchet.task_events() (never the table), so how events are stored can change underneath.

-- ---------------------------------------------------------------------------------------------------------------------
-- Workers
-- ---------------------------------------------------------------------------------------------------------------------

-- Workers of a tenant, newest first (or only one), with the queues they serve and their slots per slot type.
CREATE FUNCTION hatchet.list_workers(tenant_id uuid DEFAULT NULL, worker_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, name text, is_active boolean, is_paused boolean, labels jsonb, actions text[], slots jsonb,
               used jsonb, last_heartbeat_at timestamptz, created_at timestamptz)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := coalesce(list_workers.tenant_id, hatchet.default_tenant());
BEGIN
    RETURN QUERY
    SELECT w.id, w.name, w.is_active, w.is_paused, w.labels,
           coalesce((SELECT array_agg(a.action ORDER BY a.action) FROM hatchet.worker_actions a
                     WHERE a.tenant_id = w.tenant_id AND a.worker_id = w.id), '{}'),
           coalesce((SELECT jsonb_object_agg(s.slot_type, s.capacity) FROM hatchet.worker_slots s
                     WHERE s.tenant_id = w.tenant_id AND s.worker_id = w.id), '{}'),
           coalesce((SELECT jsonb_object_agg(s.slot_type, s.used) FROM hatchet.worker_slots s
                     WHERE s.tenant_id = w.tenant_id AND s.worker_id = w.id), '{}'),
           w.last_heartbeat_at, w.created_at
    FROM hatchet.workers w
    WHERE w.tenant_id = p_tenant AND (list_workers.worker_id IS NULL OR w.id = list_workers.worker_id)
    ORDER BY w.created_at DESC, w.id;
END
$$;
COMMENT ON FUNCTION hatchet.list_workers(uuid, uuid) IS
    'workers of a tenant (or one of them) with actions, slot capacity and slots in use per slot type';

-- One worker of a tenant; no row if it does not exist.
CREATE FUNCTION hatchet.worker(worker_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, name text, is_active boolean, is_paused boolean, labels jsonb, actions text[], slots jsonb,
               used jsonb, last_heartbeat_at timestamptz, created_at timestamptz)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF worker.worker_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['worker_id']);
    END IF;
    RETURN QUERY SELECT * FROM hatchet.list_workers(worker.tenant_id, worker.worker_id);
END
$$;
COMMENT ON FUNCTION hatchet.worker(uuid, uuid) IS 'one worker (no row if unknown), as hatchet.list_workers shows it';

-- ---------------------------------------------------------------------------------------------------------------------
-- Tasks and runs
-- ---------------------------------------------------------------------------------------------------------------------

-- The retry_count of a task's running attempt, or NULL if it is not running (RefreshTimeout and ReleaseSlot name
-- only the task).
CREATE FUNCTION hatchet.running_attempt(task_id uuid, tenant_id uuid DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF running_attempt.task_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    RETURN (SELECT r.retry_count FROM hatchet.running r
            WHERE r.tenant_id = coalesce(running_attempt.tenant_id, hatchet.default_tenant())
              AND r.task_id = running_attempt.task_id);
END
$$;
COMMENT ON FUNCTION hatchet.running_attempt(uuid, uuid) IS 'the retry_count of a task''s running attempt, or NULL';

-- One task: its run, readable id, queue, status and creation time; no row if it does not exist.
CREATE FUNCTION hatchet.task(task_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, run_id uuid, readable_id text, queue text, status text, created_at timestamptz)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := coalesce(task.tenant_id, hatchet.default_tenant());
BEGIN
    IF task.task_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    RETURN QUERY
    SELECT t.id, t.run_id, t.readable_id, t.queue, s.state, t.inserted_at
    FROM hatchet.tasks t CROSS JOIN LATERAL hatchet._task_state(p_tenant, t.id) s
    WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(task.task_id) AND t.id = task.task_id;
END
$$;
COMMENT ON FUNCTION hatchet.task(uuid, uuid) IS 'one task with its run and status (no row if unknown)';

-- The columns every run read returns, for a set of run rows (an internal building block of run and list_runs).
CREATE FUNCTION hatchet._run_view(p_tenant uuid, p_run hatchet.runs)
RETURNS TABLE (id uuid, status text, input jsonb, additional_metadata jsonb, created_at timestamptz,
               workflow_name text, workflow_id uuid, workflow_version_id uuid, parent_task_id uuid,
               triggered_by text, children bigint)
LANGUAGE plpgsql STABLE
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
    FROM hatchet.workflow_versions v
    JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
    WHERE v.tenant_id = p_tenant AND v.id = p_run.workflow_version_id;
END
$$;

-- One run with its status, workflow and how many runs its tasks spawned. A task enqueued on its own (hatchet.enqueue)
-- is its own run: it is returned too, with NULL workflow columns. No row if there is no such run.
CREATE FUNCTION hatchet.run(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, status text, input jsonb, additional_metadata jsonb, created_at timestamptz,
               workflow_name text, workflow_id uuid, workflow_version_id uuid, parent_task_id uuid,
               triggered_by text, children bigint)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := coalesce(run.tenant_id, hatchet.default_tenant());
    v_run    hatchet.runs;
BEGIN
    IF run.run_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    v_run := hatchet._run_row(p_tenant, run.run_id);
    IF v_run.id IS NOT NULL THEN
        RETURN QUERY SELECT * FROM hatchet._run_view(p_tenant, v_run);
        RETURN;
    END IF;
    RETURN QUERY
    SELECT t.id, hatchet.task_status(t.id, p_tenant), t.input, t.additional_metadata, t.inserted_at,
           NULL::text, NULL::uuid, NULL::uuid, NULL::uuid, 'manual'::text, 0::bigint
    FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(run.run_id) AND t.id = run.run_id
      AND t.run_id = t.id;
END
$$;
COMMENT ON FUNCTION hatchet.run(uuid, uuid) IS
    'one run (or a task enqueued on its own) with status, workflow and number of spawned child runs; no row if unknown';

-- Workflow runs matching a filter, newest first, one page of them, each with the number of runs matching in all.
CREATE FUNCTION hatchet.list_runs(
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
    IF list_runs."limit" IS NULL OR list_runs."limit" NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('limit must be between 1 and 10000, not %s',
                                                                     coalesce(list_runs."limit"::text, 'null'))]);
    END IF;
    IF list_runs."offset" IS NULL OR list_runs."offset" < 0 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('offset must not be negative, not %s',
                                                                     coalesce(list_runs."offset"::text, 'null'))]);
    END IF;
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
COMMENT ON FUNCTION hatchet.list_runs(timestamptz, timestamptz, uuid[], jsonb, uuid, text[], uuid, uuid, integer,
                                      integer, uuid) IS
    'workflow runs matching a filter, newest first, one page, each row carrying the total number of matches';

-- How many runs each task of a run spawned (tasks that spawned none are absent).
CREATE FUNCTION hatchet.run_children(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, children bigint)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := coalesce(run_children.tenant_id, hatchet.default_tenant());
BEGIN
    IF run_children.run_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    RETURN QUERY
    SELECT c.parent_task_id, count(*)
    FROM hatchet.runs c
    WHERE c.tenant_id = p_tenant AND c.parent_task_id IN
          (SELECT t.id FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.run_id = run_children.run_id
             AND t.inserted_at >= hatchet.uuid_time(run_children.run_id))
    GROUP BY c.parent_task_id
    ORDER BY c.parent_task_id;
END
$$;
COMMENT ON FUNCTION hatchet.run_children(uuid, uuid) IS 'how many child runs each task of a run spawned';

-- The finished runs among run_ids (COMPLETED, FAILED or CANCELLED), one row per created task with its status, output
-- and error: what SubscribeToWorkflowRuns sends. Unknown, unfinished and NULL ids are left out.
CREATE FUNCTION hatchet.finished_runs(run_ids uuid[], tenant_id uuid DEFAULT NULL)
RETURNS TABLE (run_id uuid, run_status text, task_id uuid, readable_id text, status text, retry_count integer,
               output jsonb, error text, queue text, created_at timestamptz)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := coalesce(finished_runs.tenant_id, hatchet.default_tenant());
    v_run    uuid;
    v_status text;
BEGIN
    IF finished_runs.run_ids IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_ids']);
    END IF;
    IF cardinality(finished_runs.run_ids) > 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('at most 10000 run ids at once, not %s',
                                                                     cardinality(finished_runs.run_ids))]);
    END IF;
    FOR v_run IN SELECT DISTINCT r FROM unnest(finished_runs.run_ids) r WHERE r IS NOT NULL ORDER BY 1 LOOP
        CONTINUE WHEN hatchet._run_row(p_tenant, v_run) IS NULL
                  AND NOT EXISTS (SELECT 1 FROM hatchet.tasks t
                                  WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(v_run)
                                    AND t.id = v_run);
        v_status := hatchet.run_status(v_run, p_tenant);
        CONTINUE WHEN v_status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');
        RETURN QUERY
        SELECT v_run, v_status, t.task_id, t.readable_id, t.status, t.retry_count, t.output, t.error, t.queue,
               t.created_at
        FROM hatchet.run_tasks(v_run, p_tenant) t
        WHERE t.task_id IS NOT NULL
        ORDER BY t.created_at, t.task_id;
    END LOOP;
END
$$;
COMMENT ON FUNCTION hatchet.finished_runs(uuid[], uuid) IS
    'the finished runs among the given ids: status, and each task''s status, output and error';

-- ---------------------------------------------------------------------------------------------------------------------
-- Workflows, events, rate limits
-- ---------------------------------------------------------------------------------------------------------------------

-- Workflows of a tenant by name (exact) or external id, or all, with their latest version.
CREATE FUNCTION hatchet.list_workflows(workflow_name text DEFAULT NULL, workflow_id uuid DEFAULT NULL,
                                       tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, name text, is_paused boolean, created_at timestamptz, version_id uuid, version text,
               version_created_at timestamptz, event_triggers text[], cron_triggers text[], description text,
               sticky text)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := coalesce(list_workflows.tenant_id, hatchet.default_tenant());
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

-- Events of a tenant, newest first, one page, each with the runs it triggered (and their status) and the total.
CREATE FUNCTION hatchet.list_events(
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
    IF list_events."limit" IS NULL OR list_events."limit" NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('limit must be between 1 and 10000, not %s',
                                                                     coalesce(list_events."limit"::text, 'null'))]);
    END IF;
    IF list_events."offset" IS NULL OR list_events."offset" < 0 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('offset must not be negative, not %s',
                                                                     coalesce(list_events."offset"::text, 'null'))]);
    END IF;
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
COMMENT ON FUNCTION hatchet.list_events(text[], timestamptz, timestamptz, integer, integer, uuid) IS
    'events, newest first, one page, with the runs each triggered ([{id, status}]) and the total number of matches';

-- The tenant's rate limits by key (those whose key contains `search`), as they stand now: a window that has passed
-- shows as refilled, and paused_until is set while a pause lasts.
CREATE FUNCTION hatchet.list_rate_limits(search text DEFAULT NULL, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (key text, limit_value integer, remaining integer, "window" text, last_refill timestamptz,
               paused_until timestamptz)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := coalesce(list_rate_limits.tenant_id, hatchet.default_tenant());
    v_now    timestamptz := clock_timestamp();
BEGIN
    RETURN QUERY
    SELECT r.key, r.limit_value,
           CASE WHEN v_now >= r.last_refill + r.window_size THEN r.limit_value ELSE r.remaining END,
           r.window_size::text, r.last_refill,
           CASE WHEN r.paused_until > v_now THEN r.paused_until END
    FROM hatchet.rate_limits r
    WHERE r.tenant_id = p_tenant AND (list_rate_limits.search IS NULL OR strpos(r.key, list_rate_limits.search) > 0)
    ORDER BY r.key;
END
$$;
COMMENT ON FUNCTION hatchet.list_rate_limits(text, uuid) IS
    'rate limits (optionally those whose key contains search): limit, units left now, window, pause';
