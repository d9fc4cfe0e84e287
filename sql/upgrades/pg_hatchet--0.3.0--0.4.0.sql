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
-- 2. Bounded lists (sql/options.sql, sql/runs.sql, sql/events.sql): list_runs and list_events count matches up to
--    10,000 instead of evaluating all of them, page by keyset ("before") as well as offset, and return payloads only
--    when include_payloads (16 MiB per page); a page holds at most 1,000 rows.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet._check_page(p_limit integer, p_offset integer) RETURNS void
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

DROP FUNCTION hatchet.list_runs(timestamptz, timestamptz, uuid[], jsonb, uuid, text[], uuid, uuid, integer, integer, uuid);
CREATE FUNCTION hatchet.list_runs(
    since            timestamptz DEFAULT NULL,
    until            timestamptz DEFAULT NULL,
    workflow_ids     uuid[]      DEFAULT NULL,
    metadata         jsonb       DEFAULT NULL,
    parent_task      uuid        DEFAULT NULL,
    statuses         text[]      DEFAULT NULL,
    worker_id        uuid        DEFAULT NULL,
    event_id         uuid        DEFAULT NULL,
    "limit"          integer     DEFAULT 50,
    "offset"         integer     DEFAULT 0,
    tenant_id        uuid        DEFAULT NULL,
    before           uuid        DEFAULT NULL,
    include_payloads boolean     DEFAULT false
)
RETURNS TABLE (id uuid, status text, input jsonb, additional_metadata jsonb, created_at timestamptz,
               workflow_name text, workflow_id uuid, workflow_version_id uuid, parent_task_id uuid,
               triggered_by text, children bigint, total bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant  uuid := hatchet._tenant(list_runs.tenant_id);
    c_count   constant integer := 10000;  -- matches counted at most (plus one, to say "more")
    v_bad     text;
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
    IF list_runs.include_payloads IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['include_payloads']);
    END IF;
    RETURN QUERY
    WITH matched AS MATERIALIZED (
        SELECT r
        FROM hatchet.runs r
        WHERE r.tenant_id = p_tenant
          AND r.inserted_at >= coalesce(list_runs.since, '-infinity')
          AND r.inserted_at <= coalesce(list_runs.until, 'infinity')
          AND (list_runs.before IS NULL
               OR (r.inserted_at, r.id) < (hatchet.uuid_time(list_runs.before), list_runs.before))
          AND (list_runs.workflow_ids IS NULL OR EXISTS (
                  SELECT 1 FROM hatchet.workflow_versions wv
                  JOIN hatchet.workflows w ON w.tenant_id = wv.tenant_id AND w.id = wv.workflow_id
                  WHERE wv.tenant_id = r.tenant_id AND wv.id = r.workflow_version_id
                    AND w.external_id = ANY (list_runs.workflow_ids)))
          AND (list_runs.metadata IS NULL OR r.additional_metadata @> list_runs.metadata)
          AND (list_runs.parent_task IS NULL OR r.parent_task_id = list_runs.parent_task)
          AND (list_runs.event_id IS NULL OR r.additional_metadata ->> 'hatchet__event_id' = list_runs.event_id::text)
          AND (list_runs.statuses IS NULL OR hatchet.run_status(r.id, p_tenant) = ANY (list_runs.statuses))
          AND (list_runs.worker_id IS NULL OR EXISTS (
                  SELECT 1 FROM hatchet.tasks t CROSS JOIN LATERAL hatchet.task_events(t.id, p_tenant) e
                  WHERE t.tenant_id = r.tenant_id AND t.run_id = r.id AND t.inserted_at >= r.inserted_at
                    AND e.event_type = 'ASSIGNED' AND e.worker = list_runs.worker_id::text))
        ORDER BY r.inserted_at DESC, r.id DESC
        LIMIT greatest(c_count + 1, list_runs."offset" + list_runs."limit")
    ), page AS (
        SELECT m.r FROM matched m
        ORDER BY (m.r).inserted_at DESC, (m.r).id DESC
        LIMIT list_runs."limit" OFFSET list_runs."offset"
    ), sized AS (
        SELECT p.r, sum(octet_length((p.r).input::text)) OVER () AS bytes FROM page p
    )
    SELECT v.id, v.status, CASE WHEN list_runs.include_payloads THEN v.input END, v.additional_metadata,
           v.created_at, v.workflow_name, v.workflow_id, v.workflow_version_id, v.parent_task_id, v.triggered_by,
           v.children, (SELECT least(count(*), c_count + 1) FROM matched)
    FROM sized c CROSS JOIN LATERAL hatchet._run_view(p_tenant, c.r) v
    WHERE NOT list_runs.include_payloads OR hatchet._page_fits('inputs', c.bytes)
    ORDER BY v.created_at DESC, v.id DESC;
END
$$;
COMMENT ON FUNCTION hatchet.list_runs(timestamptz, timestamptz, uuid[], jsonb, uuid, text[], uuid, uuid, integer,
                                      integer, uuid, uuid, boolean) IS
    'workflow runs matching a filter, newest first, one page (by offset or keyset), with the number of matches counted '
    'up to 10,000; inputs only when include_payloads';

DROP FUNCTION hatchet.list_events(text[], timestamptz, timestamptz, integer, integer, uuid);
CREATE FUNCTION hatchet.list_events(
    keys             text[]      DEFAULT NULL,
    since            timestamptz DEFAULT NULL,
    until            timestamptz DEFAULT NULL,
    "limit"          integer     DEFAULT 50,
    "offset"         integer     DEFAULT 0,
    tenant_id        uuid        DEFAULT NULL,
    before           uuid        DEFAULT NULL,
    include_payloads boolean     DEFAULT false
)
RETURNS TABLE (id uuid, key text, payload jsonb, additional_metadata jsonb, scope text, created_at timestamptz,
               runs jsonb, total bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(list_events.tenant_id);
    c_count  constant integer := 10000;  -- matches counted at most (plus one, to say "more")
BEGIN
    PERFORM hatchet._check_page(list_events."limit", list_events."offset");
    IF list_events.include_payloads IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['include_payloads']);
    END IF;
    RETURN QUERY
    WITH matched AS MATERIALIZED (
        SELECT e.tenant_id, e.id, e.inserted_at
        FROM hatchet.events e
        WHERE e.tenant_id = p_tenant AND (list_events.keys IS NULL OR e.key = ANY (list_events.keys))
          AND e.inserted_at >= coalesce(list_events.since, '-infinity')
          AND e.inserted_at <= coalesce(list_events.until, 'infinity')
          AND (list_events.before IS NULL
               OR (e.inserted_at, e.id) < (hatchet.uuid_time(list_events.before), list_events.before))
        ORDER BY e.inserted_at DESC, e.id DESC
        LIMIT greatest(c_count + 1, list_events."offset" + list_events."limit")
    ), page AS (
        SELECT e.*, sum(octet_length(e.payload::text)) OVER () AS bytes
        FROM (SELECT m.* FROM matched m ORDER BY m.inserted_at DESC, m.id DESC
              LIMIT list_events."limit" OFFSET list_events."offset") m
        JOIN hatchet.events e ON e.tenant_id = m.tenant_id AND e.inserted_at = m.inserted_at AND e.id = m.id
    )
    SELECT e.id, e.key, CASE WHEN list_events.include_payloads THEN e.payload END, e.additional_metadata, e.scope,
           e.inserted_at,
           coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'status', hatchet.run_status(r.id, p_tenant))
                                      ORDER BY r.id)
                     FROM hatchet.runs r
                     WHERE r.tenant_id = e.tenant_id AND r.inserted_at >= e.inserted_at
                       AND r.additional_metadata ->> 'hatchet__event_id' = e.id::text), '[]'),
           (SELECT least(count(*), c_count + 1) FROM matched)
    FROM page e
    WHERE NOT list_events.include_payloads OR hatchet._page_fits('payloads', e.bytes)
    ORDER BY e.inserted_at DESC, e.id DESC;
END
$$;
COMMENT ON FUNCTION hatchet.list_events(text[], timestamptz, timestamptz, integer, integer, uuid, uuid, boolean) IS
    'events, newest first, one page (by offset or keyset), with the runs each triggered ([{id, status}]) and the '
    'number of matches counted up to 10,000; payloads only when include_payloads';

-- ---------------------------------------------------------------------------------------------------------------------
-- 3. Dashboard reads (sql/dashboard.sql, new): workflow_versions, workflow_tasks, list_concurrency, queue_stats,
--    run_status_counts, run_graph, dashboard_runs.
-- ---------------------------------------------------------------------------------------------------------------------

-- The versions of a workflow, newest first, with their task count and workflow-level concurrency.
CREATE OR REPLACE FUNCTION hatchet.workflow_versions(workflow_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, version text, created_at timestamptz, tasks bigint, concurrency jsonb)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(workflow_versions.tenant_id);
BEGIN
    IF workflow_versions.workflow_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['workflow_id']);
    END IF;
    RETURN QUERY
    SELECT v.external_id, v.version, v.created_at,
           (SELECT count(*) FROM hatchet.task_definitions d
            WHERE d.tenant_id = v.tenant_id AND d.workflow_version_id = v.id),
           v.concurrency
    FROM hatchet.workflows w
    JOIN hatchet.workflow_versions v ON v.tenant_id = w.tenant_id AND v.workflow_id = w.id
    WHERE w.tenant_id = p_tenant AND w.external_id = workflow_versions.workflow_id
    ORDER BY v.id DESC
    LIMIT 100;
END
$$;
COMMENT ON FUNCTION hatchet.workflow_versions(uuid, uuid) IS
    'the latest 100 versions of a workflow, newest first, with task count and workflow-level concurrency';

-- The tasks of a workflow's latest version with their DAG edges and policies, in definition order.
CREATE OR REPLACE FUNCTION hatchet.workflow_tasks(workflow_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (readable_id text, action text, parents text[], is_on_failure boolean, is_durable boolean,
               retries integer, backoff_factor float8, execution_timeout text, schedule_timeout text,
               concurrency jsonb, rate_limits jsonb)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(workflow_tasks.tenant_id);
BEGIN
    IF workflow_tasks.workflow_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['workflow_id']);
    END IF;
    RETURN QUERY
    SELECT d.readable_id, d.action, d.parents, d.is_on_failure, d.is_durable, d.retries, d.backoff_factor,
           d.execution_timeout::text, d.schedule_timeout::text, d.concurrency, d.rate_limits
    FROM hatchet.workflows w
    CROSS JOIN LATERAL (SELECT x.id FROM hatchet.workflow_versions x
                        WHERE x.tenant_id = w.tenant_id AND x.workflow_id = w.id ORDER BY x.id DESC LIMIT 1) v
    JOIN hatchet.task_definitions d ON d.tenant_id = w.tenant_id AND d.workflow_version_id = v.id
    WHERE w.tenant_id = p_tenant AND w.external_id = workflow_tasks.workflow_id
    ORDER BY d.id;
END
$$;
COMMENT ON FUNCTION hatchet.workflow_tasks(uuid, uuid) IS
    'the tasks of a workflow''s latest version: parents, retries, timeouts, concurrency and rate-limit settings';

-- Concurrency keys: running against max_runs, and how many attempts wait for a slot. The busiest 500 keys (waiting,
-- then running); keys with nothing running or waiting are left out.
CREATE OR REPLACE FUNCTION hatchet.list_concurrency(tenant_id uuid DEFAULT NULL)
RETURNS TABLE (scope text, key text, strategy text, max_runs integer, running integer, waiting bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(list_concurrency.tenant_id);
BEGIN
    RETURN QUERY
    SELECT g.scope, g.key, g.strategy::text, g.max_runs, g.running, coalesce(q.n, 0)
    FROM hatchet.concurrency_groups g
    LEFT JOIN (SELECT c.scope, c.key, count(*) AS n FROM hatchet.concurrency_queue c
               WHERE c.tenant_id = p_tenant GROUP BY c.scope, c.key) q ON q.scope = g.scope AND q.key = g.key
    WHERE g.tenant_id = p_tenant AND (g.running > 0 OR q.n > 0)
    ORDER BY coalesce(q.n, 0) DESC, g.running DESC, g.scope, g.key
    LIMIT 500;
END
$$;
COMMENT ON FUNCTION hatchet.list_concurrency(uuid) IS
    'the busiest concurrency keys: running against max_runs and attempts waiting for a slot';

-- Per queue: attempts ready, delayed (run_at, backoff, rate limit), waiting for a concurrency slot and running now,
-- and completions and failures per 5-minute bucket over the last hour (bucket 1 is the oldest, 12 the current one).
-- Throughput is read from the timeline of tasks created in the last 6 hours (task_events by its partition key), so a
-- task that ran longer than that is not counted.
CREATE OR REPLACE FUNCTION hatchet.queue_stats(tenant_id uuid DEFAULT NULL)
RETURNS TABLE (queue text, ready bigint, delayed bigint, waiting bigint, running bigint, completed bigint[],
               failed bigint[])
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid        := hatchet._tenant(queue_stats.tenant_id);
    -- The clock, not the transaction's start: completions committed since then belong to the current bucket.
    v_now    timestamptz := pg_catalog.clock_timestamp();
BEGIN
    RETURN QUERY
    WITH depth AS (
        SELECT r.queue, count(*) AS ready, 0::bigint AS delayed, 0::bigint AS waiting, 0::bigint AS running
        FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant GROUP BY r.queue
        UNION ALL
        SELECT d.queue, 0, count(*), 0, 0 FROM hatchet.delayed_queue d WHERE d.tenant_id = p_tenant GROUP BY d.queue
        UNION ALL
        SELECT c.queue, 0, 0, count(*), 0 FROM hatchet.concurrency_queue c WHERE c.tenant_id = p_tenant
        GROUP BY c.queue
        UNION ALL
        SELECT x.queue, 0, 0, 0, count(*) FROM hatchet.running x WHERE x.tenant_id = p_tenant GROUP BY x.queue
    ), done AS (
        SELECT t.queue,
               least(12, 12 - floor(extract(epoch FROM v_now - e.created_at) / 300)::integer) AS bucket,
               e.event_type = 'COMPLETED' AS ok
        FROM hatchet.task_events e
        JOIN hatchet.tasks t ON t.tenant_id = e.tenant_id AND t.inserted_at = e.task_inserted_at AND t.id = e.task_id
        WHERE e.tenant_id = p_tenant AND e.task_inserted_at >= v_now - interval '6 hours'
          AND e.created_at > v_now - interval '1 hour' AND e.event_type IN ('COMPLETED', 'FAILED')
    ), queues AS (
        SELECT d.queue FROM depth d UNION SELECT q.queue FROM done q
    )
    SELECT q.queue,
           coalesce((SELECT sum(d.ready) FROM depth d WHERE d.queue = q.queue), 0)::bigint,
           coalesce((SELECT sum(d.delayed) FROM depth d WHERE d.queue = q.queue), 0)::bigint,
           coalesce((SELECT sum(d.waiting) FROM depth d WHERE d.queue = q.queue), 0)::bigint,
           coalesce((SELECT sum(d.running) FROM depth d WHERE d.queue = q.queue), 0)::bigint,
           ARRAY(SELECT (SELECT count(*) FROM done x WHERE x.queue = q.queue AND x.bucket = b AND x.ok)
                 FROM generate_series(1, 12) b ORDER BY b),
           ARRAY(SELECT (SELECT count(*) FROM done x WHERE x.queue = q.queue AND x.bucket = b AND NOT x.ok)
                 FROM generate_series(1, 12) b ORDER BY b)
    FROM queues q
    ORDER BY q.queue
    LIMIT 200;
END
$$;
COMMENT ON FUNCTION hatchet.queue_stats(uuid) IS
    'per queue: ready, delayed, waiting and running attempts now; completions and failures per 5 minutes, last hour';

-- How many of the newest `sample` workflow runs created in [since, until] (optionally of these workflows, with this
-- metadata) are in each status. Run status is derived from the run's tasks, so counting every run of a large
-- history would read all of it; the sample bounds the work, and `sampled` says how many runs were looked at (fewer
-- than `sample`: the counts are exact for the window).
CREATE OR REPLACE FUNCTION hatchet.run_status_counts(
    since        timestamptz DEFAULT NULL,
    until        timestamptz DEFAULT NULL,
    workflow_ids uuid[]      DEFAULT NULL,
    metadata     jsonb       DEFAULT NULL,
    sample       integer     DEFAULT 1000,
    tenant_id    uuid        DEFAULT NULL
)
RETURNS TABLE (status text, runs bigint, sampled bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run_status_counts.tenant_id);
BEGIN
    IF run_status_counts.sample IS NULL OR run_status_counts.sample NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('sample must be between 1 and 10000, not %s',
                                                                    coalesce(run_status_counts.sample::text, 'null'))]);
    END IF;
    IF run_status_counts.metadata IS NOT NULL AND jsonb_typeof(run_status_counts.metadata) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['metadata must be a JSON object']);
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT hatchet.run_status(r.id, p_tenant) AS status
        FROM hatchet.runs r
        WHERE r.tenant_id = p_tenant
          AND r.inserted_at >= coalesce(run_status_counts.since, '-infinity')
          AND r.inserted_at <= coalesce(run_status_counts.until, 'infinity')
          AND r.workflow_version_id IS NOT NULL
          AND (run_status_counts.metadata IS NULL OR r.additional_metadata @> run_status_counts.metadata)
          AND (run_status_counts.workflow_ids IS NULL OR r.workflow_version_id IN (
                  SELECT v.id FROM hatchet.workflow_versions v
                  JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
                  WHERE v.tenant_id = p_tenant AND w.external_id = ANY (run_status_counts.workflow_ids)))
        ORDER BY r.inserted_at DESC, r.id DESC
        LIMIT run_status_counts.sample
    )
    SELECT s.status, count(p.status), (SELECT count(*) FROM picked)
    FROM unnest(ARRAY['QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED']) WITH ORDINALITY s(status, n)
    LEFT JOIN picked p ON p.status = s.status
    GROUP BY s.status, s.n
    ORDER BY s.n;
END
$$;
COMMENT ON FUNCTION hatchet.run_status_counts(timestamptz, timestamptz, uuid[], jsonb, integer, uuid) IS
    'runs per status among the newest `sample` workflow runs of a window (and how many were looked at)';

-- The task graph of a run's workflow version: every task with its parents, whether or not it was created yet.
-- Empty for a task enqueued on its own; unknown run: 42704.
CREATE OR REPLACE FUNCTION hatchet.run_graph(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (readable_id text, parents text[], is_on_failure boolean)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run_graph.tenant_id);
    v_run    hatchet.runs;
BEGIN
    IF run_graph.run_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    v_run := hatchet._run_row(p_tenant, run_graph.run_id);
    IF v_run IS NULL THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['run', run_graph.run_id::text]);
    END IF;
    RETURN QUERY
    SELECT d.readable_id, d.parents, d.is_on_failure
    FROM hatchet.task_definitions d
    WHERE d.tenant_id = p_tenant AND d.workflow_version_id = v_run.workflow_version_id
    ORDER BY d.id;
END
$$;
COMMENT ON FUNCTION hatchet.run_graph(uuid, uuid) IS
    'the tasks of a run''s workflow version with their parents (the DAG), created or not';

-- One page of workflow runs for the dashboard, newest first, by keyset: `before` is the last run of the previous page.
-- No total and no inputs (a page costs the same with any history). Without a status filter it reads `limit` rows of
-- runs_pkey; with one, it derives the status of the newest runs in order until `limit` match, looking at no more than
-- 10,000 runs, so a rare status in a huge window shows what the newest 10,000 runs hold.
CREATE OR REPLACE FUNCTION hatchet.dashboard_runs(
    since        timestamptz DEFAULT NULL,
    until        timestamptz DEFAULT NULL,
    workflow_ids uuid[]      DEFAULT NULL,
    metadata     jsonb       DEFAULT NULL,
    with_status  text        DEFAULT NULL,
    before       uuid        DEFAULT NULL,
    "limit"      integer     DEFAULT 50,
    tenant_id    uuid        DEFAULT NULL
)
RETURNS TABLE (id uuid, status text, additional_metadata jsonb, created_at timestamptz, workflow_name text,
               workflow_id uuid, workflow_version_id uuid, parent_task_id uuid, children bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid    := hatchet._tenant(dashboard_runs.tenant_id);
    c_scan   constant integer := 10000;
    v_run    hatchet.runs;
    v_found  integer := 0;
    v        record;
BEGIN
    IF dashboard_runs."limit" IS NULL OR dashboard_runs."limit" NOT BETWEEN 1 AND 500 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('limit must be between 1 and 500, not %s',
                                                                    coalesce(dashboard_runs."limit"::text, 'null'))]);
    END IF;
    IF dashboard_runs.with_status IS NOT NULL
       AND dashboard_runs.with_status NOT IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED') THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'status must be QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED, not %s', dashboard_runs.with_status)]);
    END IF;
    IF dashboard_runs.metadata IS NOT NULL AND jsonb_typeof(dashboard_runs.metadata) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['metadata must be a JSON object']);
    END IF;
    FOR v_run IN
        SELECT r.* FROM hatchet.runs r
        WHERE r.tenant_id = p_tenant
          AND r.inserted_at >= coalesce(dashboard_runs.since, '-infinity')
          AND r.inserted_at <= coalesce(dashboard_runs.until, 'infinity')
          AND (dashboard_runs.before IS NULL
               OR (r.inserted_at, r.id) < (hatchet.uuid_time(dashboard_runs.before), dashboard_runs.before))
          AND r.workflow_version_id IS NOT NULL
          AND (dashboard_runs.metadata IS NULL OR r.additional_metadata @> dashboard_runs.metadata)
          AND (dashboard_runs.workflow_ids IS NULL OR r.workflow_version_id IN (
                  SELECT wv.id FROM hatchet.workflow_versions wv
                  JOIN hatchet.workflows w ON w.tenant_id = wv.tenant_id AND w.id = wv.workflow_id
                  WHERE wv.tenant_id = p_tenant AND w.external_id = ANY (dashboard_runs.workflow_ids)))
        ORDER BY r.inserted_at DESC, r.id DESC
        LIMIT CASE WHEN dashboard_runs.with_status IS NULL THEN dashboard_runs."limit" ELSE c_scan END
    LOOP
        SELECT * INTO v FROM hatchet._run_view(p_tenant, v_run);
        CONTINUE WHEN dashboard_runs.with_status IS NOT NULL AND v.status <> dashboard_runs.with_status;
        id := v.id; status := v.status; additional_metadata := v.additional_metadata; created_at := v.created_at;
        workflow_name := v.workflow_name; workflow_id := v.workflow_id; workflow_version_id := v.workflow_version_id;
        parent_task_id := v.parent_task_id; children := v.children;
        RETURN NEXT;
        v_found := v_found + 1;
        EXIT WHEN v_found >= dashboard_runs."limit";
    END LOOP;
END
$$;
COMMENT ON FUNCTION hatchet.dashboard_runs(timestamptz, timestamptz, uuid[], jsonb, text, uuid, integer, uuid) IS
    'one keyset page of workflow runs for the dashboard, newest first, without totals or inputs';


-- ---------------------------------------------------------------------------------------------------------------------
-- Last: privileges for everything this script created (keep this the final statement).
-- ---------------------------------------------------------------------------------------------------------------------

SELECT hatchet._grant_api();
