-- The dashboard's reads (hatchet-server's `/` pages): what the other files' functions do not already return. Every
-- function here is tenant-bound like the rest of the API (hatchet._tenant), reads only, and is bounded: hot tables
-- (queues, concurrency) are small by design, history is read through its primary key ranges with a LIMIT.
--
-- Public: workflow_versions, workflow_tasks, list_concurrency, queue_stats, run_status_counts, run_graph, dashboard_runs.
-- Internal: _unfinished_runs.
-- Calls: tenants.sql (_tenant), runs.sql (run_status, _run_view; run_outcomes is written by its _note_run_outcomes).

-- The versions of a workflow, newest first, with their task count and workflow-level concurrency.
CREATE FUNCTION hatchet.workflow_versions(workflow_id uuid, tenant_id uuid DEFAULT NULL)
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
CREATE FUNCTION hatchet.workflow_tasks(workflow_id uuid, tenant_id uuid DEFAULT NULL)
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
CREATE FUNCTION hatchet.list_concurrency(tenant_id uuid DEFAULT NULL)
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
CREATE FUNCTION hatchet.queue_stats(tenant_id uuid DEFAULT NULL)
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

-- The workflow runs with work in flight: an attempt in ready_queue, delayed_queue, concurrency_queue or running (a
-- task of a single-task run is the run itself, its row names no run_id), or a pending match. Every run whose status
-- is QUEUED or RUNNING is among them (an attempt that is not finished lives in one of those tables, schema.sql), and
-- they are few: the work in flight, not the history. Ids of tasks enqueued on their own come along and match no run.
CREATE FUNCTION hatchet._unfinished_runs(p_tenant uuid) RETURNS SETOF uuid
LANGUAGE sql STABLE
-- Tells the planner to join these to runs by primary-key probes: at the default estimate (1,000 rows) it hashed all of
-- hatchet.runs instead (measured with 1,000,000 runs and 1,200 in flight: 15 s for the RUNNING filter, 73 ms after).
ROWS 100
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(q.run_id, q.task_id) FROM hatchet.ready_queue q WHERE q.tenant_id = p_tenant
    UNION
    SELECT coalesce(q.run_id, q.task_id) FROM hatchet.delayed_queue q WHERE q.tenant_id = p_tenant
    UNION
    SELECT coalesce(q.run_id, q.task_id) FROM hatchet.concurrency_queue q WHERE q.tenant_id = p_tenant
    UNION
    SELECT coalesce(q.run_id, q.task_id) FROM hatchet.running q WHERE q.tenant_id = p_tenant
    UNION
    SELECT x.run_id FROM hatchet.matches x WHERE x.tenant_id = p_tenant
$$;
COMMENT ON FUNCTION hatchet._unfinished_runs(uuid) IS
    'ids of the runs with an attempt in flight or a pending match (every QUEUED or RUNNING run is among them)';

-- How many of the newest `sample` workflow runs created in [since, until] (optionally of these workflows, with this
-- metadata) are in each status. Counting every run of a large history would read all of it; the sample bounds the
-- work, and `sampled` says how many runs were looked at (fewer than `sample`: the counts are exact for the window).
-- A sampled run that is not in flight and whose tasks only ever ended COMPLETED (hatchet.run_outcomes) is COMPLETED
-- without deriving it from its tasks: two probes of run_outcomes_idx instead of a read of every task and its events.
-- The others (in flight, or a task failed or was cancelled at some point) get hatchet.run_status.
-- The runs are picked by dynamic SQL, planned for each call's arguments: a cached generic plan cannot use the
-- metadata index (runs_metadata_idx) behind "metadata IS NULL OR ...", and walking runs_pkey for a rare or absent
-- key/value reads the whole window. (Not plan_cache_mode on the function: it would replan every nested run_status.)
CREATE FUNCTION hatchet.run_status_counts(
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
    RETURN QUERY EXECUTE $q$
    WITH picked AS (
        SELECT r.id, r.inserted_at
        FROM hatchet.runs r
        WHERE r.tenant_id = $1
          AND r.inserted_at >= coalesce($2, '-infinity')
          AND r.inserted_at <= coalesce($3, 'infinity')
          AND r.workflow_version_id IS NOT NULL
          AND ($4 IS NULL OR r.additional_metadata @> $4)
          AND ($5 IS NULL OR r.workflow_version_id IN (
                  SELECT v.id FROM hatchet.workflow_versions v
                  JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
                  WHERE v.tenant_id = $1 AND w.external_id = ANY ($5)))
        ORDER BY r.inserted_at DESC, r.id DESC
        LIMIT $6
    ), statuses AS (
        SELECT CASE WHEN p.id NOT IN (SELECT u FROM hatchet._unfinished_runs($1) u)
                         AND EXISTS (SELECT 1 FROM hatchet.run_outcomes o
                                     WHERE o.tenant_id = $1 AND o.outcome = 'COMPLETED'
                                       AND o.run_inserted_at = p.inserted_at AND o.run_id = p.id)
                         AND NOT EXISTS (SELECT 1 FROM hatchet.run_outcomes o
                                         WHERE o.tenant_id = $1 AND o.outcome IN ('FAILED', 'CANCELLED')
                                           AND o.run_inserted_at = p.inserted_at AND o.run_id = p.id)
                    THEN 'COMPLETED' ELSE hatchet.run_status(p.id, $1) END AS status
        FROM picked p
    )
    SELECT s.status, count(p.status), (SELECT count(*) FROM picked)
    FROM unnest(ARRAY['QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED']) WITH ORDINALITY s(status, n)
    LEFT JOIN statuses p ON p.status = s.status
    GROUP BY s.status, s.n
    ORDER BY s.n
    $q$ USING p_tenant, run_status_counts.since, run_status_counts.until, run_status_counts.metadata,
              run_status_counts.workflow_ids, run_status_counts.sample;
END
$$;
COMMENT ON FUNCTION hatchet.run_status_counts(timestamptz, timestamptz, uuid[], jsonb, integer, uuid) IS
    'runs per status among the newest `sample` workflow runs of a window (and how many were looked at)';

-- The task graph of a run's workflow version: every task with its parents, whether or not it was created yet.
-- Empty for a task enqueued on its own; unknown run: 42704.
CREATE FUNCTION hatchet.run_graph(run_id uuid, tenant_id uuid DEFAULT NULL)
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
-- runs_pkey (or of runs_metadata_idx). With one it reads candidate runs newest first and keeps those whose status
-- (hatchet.run_status, derived from the tasks as everywhere else) is the one asked for, looking at no more than
-- 10,000 candidates:
--   * COMPLETED, FAILED, CANCELLED: the runs with a row for that outcome in hatchet.run_outcomes, read through
--     run_outcomes_idx in (outcome, time) order. Every run that ended so has one; a replayed run may also have the
--     row of an earlier ending, which the status check drops.
--   * QUEUED, RUNNING: the runs with work in flight (hatchet._unfinished_runs), sorted: every unfinished run is among
--     them, and they are as many as the runs in flight, not the history. Those that have started (an attempt running,
--     an evicted durable task, or a task finished) are the candidates for RUNNING, the others for QUEUED.
-- The runs are picked by dynamic SQL, planned for each call's arguments: a cached generic plan cannot use the
-- metadata index (runs_metadata_idx) behind "metadata IS NULL OR ...", and walking runs_pkey for a rare or absent
-- key/value reads the whole window. (Not plan_cache_mode on the function: it would replan every nested run_status.)
CREATE FUNCTION hatchet.dashboard_runs(
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
    -- Where the candidates come from, and the columns of their order (the keyset and the window are put on those
    -- columns, so the walk of run_outcomes_idx stops where the window ends).
    v_from   text;
    v_time   text := 'r.inserted_at';
    v_id     text := 'r.id';
    v_where  text := '';
    v_started text;
    v_run    hatchet.runs;
    v_prev   uuid;
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
    IF dashboard_runs.with_status IS NULL THEN
        v_from := 'hatchet.runs r';
    ELSIF dashboard_runs.with_status IN ('QUEUED', 'RUNNING') THEN
        v_from := 'hatchet._unfinished_runs($1) c(run_id) JOIN hatchet.runs r'
                  ' ON r.tenant_id = $1 AND r.inserted_at = hatchet.uuid_time(c.run_id) AND r.id = c.run_id';
        -- A run is RUNNING once one of its tasks is not QUEUED: it holds an attempt in `running`, is an evicted
        -- durable task, or has finished (then the run has a row in run_outcomes). A QUEUED run has none of the first
        -- two (it may have the third: a single-task run replayed).
        v_started := '(SELECT coalesce(q.run_id, q.task_id) FROM hatchet.running q WHERE q.tenant_id = $1'
                     ' UNION ALL SELECT coalesce(q.run_id, q.task_id) FROM hatchet.delayed_queue q'
                     ' WHERE q.tenant_id = $1 AND q.reason = ''evicted'')';
        IF dashboard_runs.with_status = 'RUNNING' THEN
            v_where := 'AND (c.run_id IN ' || v_started || ' OR EXISTS (SELECT 1 FROM hatchet.run_outcomes o'
                       ' WHERE o.tenant_id = $1 AND o.outcome IN (''COMPLETED'', ''FAILED'', ''CANCELLED'')'
                       ' AND o.run_inserted_at = r.inserted_at AND o.run_id = r.id))';
        ELSE
            v_where := 'AND c.run_id NOT IN ' || v_started;
        END IF;
    ELSE
        -- (a LATERAL probe, not a join: the planner guesses one row for the join on (inserted_at, id) and then hashes
        -- every run and sorts instead of walking run_outcomes_idx; measured 3.9 s for a page of 1,000,000 runs)
        v_from := 'hatchet.run_outcomes c CROSS JOIN LATERAL (SELECT x.* FROM hatchet.runs x'
                  ' WHERE x.tenant_id = c.tenant_id AND x.inserted_at = c.run_inserted_at AND x.id = c.run_id LIMIT 1) r';
        v_time := 'c.run_inserted_at';
        v_id := 'c.run_id';
        v_where := 'AND c.tenant_id = $1 AND c.outcome = $8::hatchet.readable_status';
    END IF;
    FOR v_run IN EXECUTE format($q$
        SELECT r.* FROM %1$s
        WHERE r.tenant_id = $1
          AND %2$s >= coalesce($2, '-infinity')
          AND %2$s <= coalesce($3, 'infinity')
          AND ($4 IS NULL OR (%2$s, %3$s) < (hatchet.uuid_time($4), $4))
          AND r.workflow_version_id IS NOT NULL
          AND ($5 IS NULL OR r.additional_metadata @> $5)
          AND ($6 IS NULL OR r.workflow_version_id IN (
                  SELECT wv.id FROM hatchet.workflow_versions wv
                  JOIN hatchet.workflows w ON w.tenant_id = wv.tenant_id AND w.id = wv.workflow_id
                  WHERE wv.tenant_id = $1 AND w.external_id = ANY ($6)))
          %4$s
        ORDER BY %2$s DESC, %3$s DESC
        LIMIT $7
        $q$, v_from, v_time, v_id, v_where)
        USING p_tenant, dashboard_runs.since, dashboard_runs.until, dashboard_runs.before, dashboard_runs.metadata,
              dashboard_runs.workflow_ids,
              CASE WHEN dashboard_runs.with_status IS NULL THEN dashboard_runs."limit" ELSE c_scan END,
              dashboard_runs.with_status
    LOOP
        -- The same run twice in a row: two rows of run_outcomes (see there).
        CONTINUE WHEN v_run.id = v_prev;
        v_prev := v_run.id;
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
