-- The dashboard's reads (hatchet-server's `/` pages): what the other files' functions do not already return. Every
-- function here is tenant-bound like the rest of the API (hatchet._tenant), reads only, and is bounded: hot tables
-- (queues, concurrency) are small by design, history is read through its primary key ranges with a LIMIT.
--
-- Public: workflow_versions, workflow_tasks, list_concurrency, queue_stats, run_status_counts, run_graph, dashboard_runs.
-- Internal: _unfinished_runs, _run_statuses, _dashboard_page, _dashboard_runs.
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

-- The status of each of these workflow runs, as hatchet.run_status derives it, for many runs in one statement (the
-- dashboard's lists and counts): a fifth of the time of one hatchet.run_status call per run. (PL/pgSQL for its cached
-- plan: as an SQL function it was planned at every call, 15 ms with the partitions of a day's history.) Shortcuts,
-- each giving what run_status gives:
--   * a run with work in flight (hatchet._unfinished_runs) that holds an attempt in `running` or an evicted durable
--     task is RUNNING; one in flight whose tasks never ended (no hatchet.run_outcomes row) is QUEUED (all its tasks
--     are queued or waiting); any other run in flight gets hatchet.run_status itself (few: a DAG between tasks);
--   * a run not in flight: each task is in its latest final state (COMPLETED, FAILED, CANCELLED; SKIPPED counts as
--     COMPLETED) or, with none, QUEUED; with only a COMPLETED row in run_outcomes and no FAILED or CANCELLED row it is
--     COMPLETED without reading its tasks.
-- Ids that are not workflow runs of the tenant come back COMPLETED (run_status raises 42704 for them): the callers pass
-- runs rows.
CREATE FUNCTION hatchet._run_statuses(p_tenant uuid, p_runs uuid[])
RETURNS TABLE (run_id uuid, status text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH busy AS MATERIALIZED (
        SELECT u.u AS id FROM hatchet._unfinished_runs(p_tenant) u(u)
    ), started AS MATERIALIZED (
        SELECT coalesce(q.run_id, q.task_id) AS id FROM hatchet.running q WHERE q.tenant_id = p_tenant
        UNION
        SELECT coalesce(q.run_id, q.task_id) FROM hatchet.delayed_queue q
        WHERE q.tenant_id = p_tenant AND q.reason = 'evicted'
    ), r AS (
        SELECT DISTINCT u.u AS id, hatchet.uuid_time(u.u) AS at FROM unnest(p_runs) u(u)
    )
    SELECT r.id,
           CASE
               WHEN r.id IN (SELECT b.id FROM busy b) THEN
                   CASE WHEN r.id IN (SELECT s.id FROM started s) THEN 'RUNNING'
                        WHEN NOT EXISTS (SELECT 1 FROM hatchet.run_outcomes o
                                         WHERE o.tenant_id = p_tenant AND o.outcome IN ('COMPLETED', 'FAILED', 'CANCELLED')
                                           AND o.run_inserted_at = r.at AND o.run_id = r.id) THEN 'QUEUED'
                        ELSE hatchet.run_status(r.id, p_tenant) END
               WHEN EXISTS (SELECT 1 FROM hatchet.run_outcomes o
                            WHERE o.tenant_id = p_tenant AND o.outcome = 'COMPLETED'
                              AND o.run_inserted_at = r.at AND o.run_id = r.id)
                    AND NOT EXISTS (SELECT 1 FROM hatchet.run_outcomes o
                                    WHERE o.tenant_id = p_tenant AND o.outcome IN ('FAILED', 'CANCELLED')
                                      AND o.run_inserted_at = r.at AND o.run_id = r.id) THEN 'COMPLETED'
               ELSE (SELECT CASE WHEN count(*) FILTER (WHERE k.ev IS NULL) > 0
                                 THEN CASE WHEN count(*) > count(*) FILTER (WHERE k.ev IS NULL) THEN 'RUNNING'
                                           ELSE 'QUEUED' END
                                 WHEN bool_or(k.ev = 'FAILED') THEN 'FAILED'
                                 WHEN bool_or(k.ev = 'CANCELLED') THEN 'CANCELLED'
                                 ELSE 'COMPLETED' END
                     FROM hatchet.tasks t
                     LEFT JOIN LATERAL (SELECT e.event_type AS ev FROM hatchet.task_events e
                                        WHERE e.tenant_id = p_tenant AND e.task_inserted_at = t.inserted_at
                                          AND e.task_id = t.id
                                          AND e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED')
                                        ORDER BY e.created_at DESC LIMIT 1) k ON true
                     WHERE t.tenant_id = p_tenant AND t.run_id = r.id AND t.inserted_at >= r.at)
           END
    FROM r;
END
$$;
COMMENT ON FUNCTION hatchet._run_statuses(uuid, uuid[]) IS
    'the status of many workflow runs at once, as hatchet.run_status derives each';

-- How many workflow runs created in [since, until] (optionally of these workflows, with this metadata) are in each
-- status, each counted up to `up_to`: `more` says there are more than that (the dashboard shows "100+"). Exact below
-- the cap, without counting every run of a large history: each status's runs are found as the dashboard's list with
-- that status filter finds them (hatchet._dashboard_runs) and only up_to + 1 of them are looked at. `more` is also set
-- when that search gave up before the cap (2,000 candidates looked at in a day, e.g. runs of a rare workflow among
-- many FAILED runs, or a common metadata value that no FAILED run has): then `runs` is a lower bound. `statuses`: only
-- those (the dashboard asks for each status on its own connection, at once).
CREATE FUNCTION hatchet.run_status_counts(
    since        timestamptz DEFAULT NULL,
    until        timestamptz DEFAULT NULL,
    workflow_ids uuid[]      DEFAULT NULL,
    metadata     jsonb       DEFAULT NULL,
    up_to        integer     DEFAULT 1000,
    tenant_id    uuid        DEFAULT NULL,
    statuses     text[]      DEFAULT NULL
)
RETURNS TABLE (status text, runs bigint, more boolean)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run_status_counts.tenant_id);
BEGIN
    IF run_status_counts.up_to IS NULL OR run_status_counts.up_to NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('up_to must be between 1 and 10000, not %s',
                                                                    coalesce(run_status_counts.up_to::text, 'null'))]);
    END IF;
    IF run_status_counts.metadata IS NOT NULL AND jsonb_typeof(run_status_counts.metadata) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['metadata must be a JSON object']);
    END IF;
    IF NOT run_status_counts.statuses <@ ARRAY['QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'] THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'statuses must be among QUEUED, RUNNING, COMPLETED, FAILED and CANCELLED, not %s',
            run_status_counts.statuses)]);
    END IF;
    -- (_dashboard_runs without the view: the runs' ids only, and a row with a NULL id when it gave up early)
    RETURN QUERY
    SELECT s.status, least(c.found, run_status_counts.up_to), c.found > run_status_counts.up_to OR c.gave_up
    FROM unnest(ARRAY['QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED']) WITH ORDINALITY s(status, n)
    CROSS JOIN LATERAL (
        SELECT count(d.id) AS found, count(*) > count(d.id) AS gave_up
        FROM hatchet._dashboard_runs(p_tenant, run_status_counts.since, run_status_counts.until,
                                     run_status_counts.workflow_ids, run_status_counts.metadata, s.status, NULL,
                                     run_status_counts.up_to + 1, false) d) c
    WHERE run_status_counts.statuses IS NULL OR s.status = ANY (run_status_counts.statuses)
    ORDER BY s.n;
END
$$;
COMMENT ON FUNCTION hatchet.run_status_counts(timestamptz, timestamptz, uuid[], jsonb, integer, uuid, text[]) IS
    'workflow runs per status in a window, each counted up to `up_to` (more: there are more than that)';

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

-- The rows of dashboard_runs for a batch of candidate runs (in the batch's order): those in `p_status` (any without),
-- at most p_limit. With p_view false only the ids (the counts need nothing else).
CREATE FUNCTION hatchet._dashboard_page(p_tenant uuid, p_batch hatchet.runs[], p_status text, p_limit integer,
                                        p_view boolean)
RETURNS TABLE (id uuid, status text, additional_metadata jsonb, created_at timestamptz, workflow_name text,
               workflow_id uuid, workflow_version_id uuid, parent_task_id uuid, children bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT b.id, s.status, b.additional_metadata, b.inserted_at, w.name, w.external_id, v.external_id,
           b.parent_task_id,
           -- (hatchet._run_view's count, which would derive the status again)
           CASE WHEN p_view THEN
               (SELECT count(*) FROM hatchet.runs c
                WHERE c.tenant_id = p_tenant AND c.parent_task_id IN
                      (SELECT t.id FROM hatchet.tasks t
                       WHERE t.tenant_id = p_tenant AND t.run_id = b.id AND t.inserted_at >= b.inserted_at)) END
    FROM unnest(p_batch) WITH ORDINALITY b
    JOIN hatchet._run_statuses(p_tenant, ARRAY(SELECT x.id FROM unnest(p_batch) x)) s ON s.run_id = b.id
    LEFT JOIN hatchet.workflow_versions v ON p_view AND v.tenant_id = p_tenant AND v.id = b.workflow_version_id
    LEFT JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
    WHERE p_status IS NULL OR s.status = p_status
    ORDER BY b.ordinality
    LIMIT p_limit;
END
$$;
COMMENT ON FUNCTION hatchet._dashboard_page(uuid, hatchet.runs[], text, integer, boolean) IS
    'dashboard_runs rows for a batch of candidate runs: status derived for all at once, filtered, in order';

-- One page of workflow runs for the dashboard, newest first, by keyset: `before` is the last run of the previous page.
-- No total and no inputs (a page costs the same with any history). Without a status or metadata filter it reads
-- `limit` rows of runs_pkey. With a status filter it reads candidate runs newest first and keeps those whose status
-- (derived from the tasks as hatchet.run_status does, for up to 1,000 candidates at once: hatchet._run_statuses) is
-- the one asked for, looking at no more than 10,000 candidates (per day, with a metadata filter; a search that stops
-- there before the page is full ends the page with a row whose id is NULL and whose resume_before is the last run it
-- looked at, so the caller can offer to go on with the older runs):
--   * COMPLETED, FAILED, CANCELLED: the runs with a row for that outcome in hatchet.run_outcomes, read through
--     run_outcomes_idx in (outcome, time) order. Every run that ended so has one; a replayed run may also have the
--     row of an earlier ending, which the status check drops.
--   * QUEUED, RUNNING: the runs with work in flight (hatchet._unfinished_runs), sorted: every unfinished run is among
--     them, and they are as many as the runs in flight, not the history. Those that have started (an attempt running,
--     an evicted durable task, or a task finished) are the candidates for RUNNING, the others for QUEUED.
-- A metadata filter (other than with QUEUED or RUNNING, whose candidates are few anyway) goes through the window one
-- day at a time, newest first, until the page is full, and in each day starts from the more selective side. It looks
-- at the metadata of the day's newest 2,000 runs (runs_pkey): if fewer than 20 match (1 %), the value is rare in that
-- day, and all the day's matches are read through runs_metadata_idx (a bitmap, which has no order) and sorted (with a
-- status, those with a row for that outcome: one probe each); else the value is common, and walking the day newest
-- first (runs_pkey, or run_outcomes_idx with a status) checking each run's metadata finds a page soon. One query over
-- the whole window could do neither well: the index cannot give rows in time order, the planner cannot tell a value
-- matching 1 run in 1,000 from one matching 1 in 4 (both are estimated alike), and asking the index how many match
-- costs as much as reading them (a GIN bitmap is built whole: 70 ms for 200,000 matches). A value common among the
-- newest runs and rare before them is walked through the rest of the day. Days with no runs are skipped with one
-- probe of runs_pkey.
-- The runs are picked by dynamic SQL, planned for each call's arguments: a cached generic plan cannot use the
-- metadata index behind "metadata IS NULL OR ...", and partitions outside a day are pruned when it is planned.
-- (Not plan_cache_mode on the function: it would replan every nested run_status.)
CREATE FUNCTION hatchet._dashboard_runs(p_tenant uuid, since timestamptz, until timestamptz, workflow_ids uuid[],
                                        metadata jsonb, with_status text, before uuid, "limit" integer,
                                        p_view boolean)
RETURNS TABLE (id uuid, status text, additional_metadata jsonb, created_at timestamptz, workflow_name text,
               workflow_id uuid, workflow_version_id uuid, parent_task_id uuid, children bigint, resume_before uuid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- Candidates one query looks at, at most: a page looks at 10,000; a count at 2,000 (five per page, and a count
    -- that gives up says so).
    c_scan   constant integer := CASE WHEN p_view THEN 10000 ELSE 2000 END;
    -- A metadata value matching fewer than c_common of a day's newest c_sample runs (1 %) is rare in that day.
    c_sample constant integer := 2000;
    c_common constant integer := 20;
    -- Where the candidates come from, and the columns of their order (the keyset, the window and the day are put on
    -- those columns, so the walk of run_outcomes_idx stops where they end).
    v_from   text;
    v_time   text := 'r.inserted_at';
    v_id     text := 'r.id';
    v_where  text := '';
    v_started text;
    v_filter text;
    v_sql    text;
    -- The day [v_lo, v_hi) being read; one pass from -infinity to infinity without a metadata filter.
    v_by_day boolean;
    v_lo     timestamptz := '-infinity';
    v_hi     timestamptz := 'infinity';
    v_newest timestamptz;
    v_matches integer;
    v_run    hatchet.runs;
    v_cand   record;
    v_walk   boolean;
    v_prev   uuid;
    -- The last candidate looked at, matching or not: where a search that stopped early resumes.
    v_last   uuid;
    v_found  integer := 0;
    v_rows   integer;
    v_n      integer;
    -- Candidates whose status is derived together (hatchet._run_statuses), in their order.
    v_batch  hatchet.runs[] := '{}';
    v_chunk  integer := CASE WHEN _dashboard_runs.with_status IS NULL THEN _dashboard_runs."limit"
                             ELSE least(greatest(_dashboard_runs."limit", 100), 1000) END;
BEGIN
    v_by_day := _dashboard_runs.metadata IS NOT NULL AND _dashboard_runs.with_status IS DISTINCT FROM 'QUEUED'
                AND _dashboard_runs.with_status IS DISTINCT FROM 'RUNNING';
    IF _dashboard_runs.with_status IS NULL THEN
        v_from := 'hatchet.runs r';
    ELSIF _dashboard_runs.with_status IN ('QUEUED', 'RUNNING') THEN
        v_from := 'hatchet._unfinished_runs($1) c(run_id) JOIN hatchet.runs r'
                  ' ON r.tenant_id = $1 AND r.inserted_at = hatchet.uuid_time(c.run_id) AND r.id = c.run_id';
        -- (ordered by the ids' own time, equal to the run's: the ids are sorted first and each run read as the
        -- caller reaches it, not all of them before a sort)
        v_time := 'hatchet.uuid_time(c.run_id)';
        v_id := 'c.run_id';
        -- A run is RUNNING once one of its tasks is not QUEUED: it holds an attempt in `running`, is an evicted
        -- durable task, or has finished (then the run has a row in run_outcomes). A QUEUED run has none of the first
        -- two (it may have the third: a single-task run replayed).
        v_started := '(SELECT coalesce(q.run_id, q.task_id) FROM hatchet.running q WHERE q.tenant_id = $1'
                     ' UNION ALL SELECT coalesce(q.run_id, q.task_id) FROM hatchet.delayed_queue q'
                     ' WHERE q.tenant_id = $1 AND q.reason = ''evicted'')';
        IF _dashboard_runs.with_status = 'RUNNING' THEN
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
    -- The filters every query below shares ($9, $10: the day); %5$s is how the metadata is matched.
    v_filter := $f$
          r.tenant_id = $1
          AND %2$s >= coalesce($2, '-infinity')
          AND %2$s <= coalesce($3, 'infinity')
          AND %2$s >= $9 AND %2$s < $10
          AND ($4 IS NULL OR (%2$s, %3$s) < (hatchet.uuid_time($4), $4))
          AND r.workflow_version_id IS NOT NULL
          AND ($5 IS NULL OR %5$s)
          AND ($6 IS NULL OR r.workflow_version_id IN (
                  SELECT wv.id FROM hatchet.workflow_versions wv
                  JOIN hatchet.workflows w ON w.tenant_id = wv.tenant_id AND w.id = wv.workflow_id
                  WHERE wv.tenant_id = $1 AND w.external_id = ANY ($6)))
    $f$;
    IF v_by_day THEN
        -- The newest day holding a run at or before the window's end (and the keyset).
        SELECT r.inserted_at INTO v_newest FROM hatchet.runs r
        WHERE r.tenant_id = p_tenant
          AND r.inserted_at <= least(coalesce(_dashboard_runs.until, 'infinity'),
                                     coalesce(hatchet.uuid_time(_dashboard_runs.before), 'infinity'))
        ORDER BY r.inserted_at DESC LIMIT 1;
        IF v_newest IS NULL OR v_newest < _dashboard_runs.since THEN
            RETURN;
        END IF;
        v_lo := date_trunc('day', v_newest, 'UTC');
    END IF;
    LOOP
        v_walk := false;
        IF v_by_day THEN
            -- How many of the day's newest c_sample runs (of the other filters) match.
            EXECUTE format('SELECT count(*) FROM (SELECT r.additional_metadata AS m FROM hatchet.runs r WHERE '
                           || v_filter || ' ORDER BY r.inserted_at DESC, r.id DESC LIMIT %1$s) x WHERE x.m @> $5',
                           c_sample, 'r.inserted_at', 'r.id', '', 'true')
                INTO v_matches
                USING p_tenant, _dashboard_runs.since, _dashboard_runs.until, _dashboard_runs.before,
                      _dashboard_runs.metadata, _dashboard_runs.workflow_ids, NULL::integer, NULL::text, v_lo, v_hi;
            IF v_matches < c_common THEN
                -- A rare value: all of the day's matches, from runs_metadata_idx (MATERIALIZED: read them all, then
                -- sort), and with a status those with a row for that outcome.
                v_sql := format('WITH m AS MATERIALIZED (SELECT r.* FROM hatchet.runs r WHERE ' || v_filter || ')'
                                ' SELECT m::hatchet.runs AS run, true AS ok FROM m WHERE $8 IS NULL OR EXISTS (SELECT 1'
                                ' FROM hatchet.run_outcomes o WHERE o.tenant_id = $1'
                                ' AND o.outcome = $8::hatchet.readable_status'
                                ' AND o.run_inserted_at = m.inserted_at AND o.run_id = m.id)'
                                ' ORDER BY m.inserted_at DESC, m.id DESC',
                                NULL, 'r.inserted_at', 'r.id', '', 'r.additional_metadata @> $5');
            ELSE
                -- A common value: walk the day in order, the metadata checked here (`ok`), so that the c_scan bound
                -- counts the runs looked at, matching or not (and the planner stays off runs_metadata_idx, which it
                -- would pick, reading every match of the day to sort them).
                v_walk := true;
                v_sql := format('SELECT r::hatchet.runs AS run, r.additional_metadata @> $5 AS ok FROM %1$s WHERE ' || v_filter
                                || ' %4$s ORDER BY %2$s DESC, %3$s DESC LIMIT $7',
                                v_from, v_time, v_id, v_where, 'true');
            END IF;
        ELSE
            v_sql := format('SELECT r::hatchet.runs AS run, true AS ok FROM %1$s WHERE ' || v_filter
                            || ' %4$s ORDER BY %2$s DESC, %3$s DESC LIMIT $7',
                            v_from, v_time, v_id, v_where, 'r.additional_metadata @> $5');
        END IF;
        v_rows := 0;
        FOR v_cand IN EXECUTE v_sql
            USING p_tenant, _dashboard_runs.since, _dashboard_runs.until, _dashboard_runs.before,
                  _dashboard_runs.metadata, _dashboard_runs.workflow_ids,
                  CASE WHEN _dashboard_runs.with_status IS NULL AND NOT v_walk THEN _dashboard_runs."limit"
                       ELSE c_scan END,
                  _dashboard_runs.with_status, v_lo, v_hi
        LOOP
            v_rows := v_rows + 1;
            v_last := (v_cand.run).id;
            CONTINUE WHEN NOT v_cand.ok;
            v_run := v_cand.run;
            -- The same run twice in a row: two rows of run_outcomes (see there).
            CONTINUE WHEN v_run.id = v_prev;
            v_prev := v_run.id;
            v_batch := v_batch || v_run;
            CONTINUE WHEN cardinality(v_batch) < v_chunk;
            RETURN QUERY SELECT p.*, NULL::uuid FROM hatchet._dashboard_page(p_tenant, v_batch, _dashboard_runs.with_status,
                                                               _dashboard_runs."limit" - v_found, p_view) p;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_found := v_found + v_n;
            v_batch := '{}';
            EXIT WHEN v_found >= _dashboard_runs."limit";
        END LOOP;
        IF cardinality(v_batch) > 0 THEN
            RETURN QUERY SELECT p.*, NULL::uuid FROM hatchet._dashboard_page(p_tenant, v_batch, _dashboard_runs.with_status,
                                                               _dashboard_runs."limit" - v_found, p_view) p;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_found := v_found + v_n;
            v_batch := '{}';
        END IF;
        -- The walk looked at c_scan runs without filling the page: it stops there (a shorter page), and says so with a
        -- last row whose id is NULL and whose resume_before is the last run it looked at: the same call with
        -- before => resume_before goes on with the older runs.
        IF v_rows >= c_scan AND v_found < _dashboard_runs."limit" THEN
            id := NULL;
            resume_before := v_last;
            RETURN NEXT;
            RETURN;
        END IF;
        EXIT WHEN NOT v_by_day OR v_found >= _dashboard_runs."limit" OR v_lo <= _dashboard_runs.since;
        -- The next older day that holds a run.
        v_hi := v_lo;
        SELECT r.inserted_at INTO v_newest FROM hatchet.runs r
        WHERE r.tenant_id = p_tenant AND r.inserted_at < v_hi
        ORDER BY r.inserted_at DESC LIMIT 1;
        EXIT WHEN v_newest IS NULL OR v_newest < _dashboard_runs.since;
        v_lo := date_trunc('day', v_newest, 'UTC');
    END LOOP;
END
$$;
COMMENT ON FUNCTION hatchet._dashboard_runs(uuid, timestamptz, timestamptz, uuid[], jsonb, text, uuid, integer, boolean) IS
    'hatchet.dashboard_runs without its checks; p_view false: ids only (and the row that says the search stopped)';

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
               workflow_id uuid, workflow_version_id uuid, parent_task_id uuid, children bigint, resume_before uuid)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(dashboard_runs.tenant_id);
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
    RETURN QUERY
    SELECT * FROM hatchet._dashboard_runs(p_tenant, dashboard_runs.since, dashboard_runs.until,
                                          dashboard_runs.workflow_ids, dashboard_runs.metadata,
                                          dashboard_runs.with_status, dashboard_runs.before, dashboard_runs."limit",
                                          true);
END
$$;
COMMENT ON FUNCTION hatchet.dashboard_runs(timestamptz, timestamptz, uuid[], jsonb, text, uuid, integer, uuid) IS
    'one keyset page of workflow runs for the dashboard, newest first, without totals or inputs (a last row with a NULL id: the search stopped early, resume with before => its resume_before)';
