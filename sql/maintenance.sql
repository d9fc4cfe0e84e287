-- Maintenance: what the background worker runs (each part also callable by hand). Daily partitions of the history
-- tables, created ahead and dropped after retention; reaping timed-out attempts, expired queued attempts, dead
-- workers (with a grace after an outage) and assignments never acknowledged; pruning stream chunks; and
-- hatchet.run_maintenance, the pass that does all of it and fires due crons, schedules and sleeps.
--
-- Why daily range partitions: history is append-only and expires by age, so retention is a DROP of a whole day
-- (instant, no dead tuples, no vacuum debt) instead of a DELETE over millions of rows.
--
-- No poison pills: every job of the pass (promote, reap dead workers, reap timeouts, expire queued, time triggers) runs
-- for each tenant in a subtransaction of its own (_maintenance_job). A job that fails for one tenant is rolled back,
-- logged (WARNING), counted in hatchet.maintenance_status and skipped; the other tenants and jobs go on, and the job
-- is tried again on the next pass. Partition DDL runs in its own transaction (the worker calls maintain_partitions
-- separately) and waits for its locks at most hatchet.ddl_lock_timeout: a partition whose lock is not granted (a long
-- reader) is skipped and tried again later, so retention never queues enqueues behind a reader.
--
-- Public: partitioned_tables, maintain_partitions, prune_stream_chunks, run_maintenance.
-- Calls: tasks.sql (_promote_due, _fail_attempt, _finish_unstarted), flow_control.sql (_release_slots), workers.sql
-- (deregister_worker), runs.sql (_lock_pending_runs, _on_tasks_finished, run_status), crons.sql
-- (_tenant_time_triggers, _time_triggers_due).

-- ---------------------------------------------------------------------------------------------------------------------
-- Daily partitions of the history tables
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet.partitioned_tables() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ARRAY['runs', 'tasks', 'task_events', 'payloads', 'events', 'logs', 'durable_logs',
                   'durable_log_entries', 'otel_spans', 'run_outcomes'] $$;
COMMENT ON FUNCTION hatchet.partitioned_tables() IS 'history tables partitioned by day';

-- Runs one partition DDL statement with lock_timeout = hatchet.ddl_lock_timeout, in a subtransaction: returns p_done
-- if it ran, 'skipped' (with a WARNING) if its locks were not granted in time. Any other error is raised.
CREATE FUNCTION hatchet._partition_ddl(p_sql text, p_done text, p_name text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- with its unit ('100ms'), which is what lock_timeout takes
    v_timeout text := coalesce(current_setting('hatchet.ddl_lock_timeout', true), '100ms');
    v_saved   text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config('lock_timeout', v_timeout, true);
    BEGIN
        EXECUTE p_sql;
    EXCEPTION WHEN lock_not_available THEN
        PERFORM set_config('lock_timeout', v_saved, true);
        RAISE WARNING 'pg_hatchet: partition % not %: its table is in use (lock not granted within %); trying again later',
            p_name, p_done, v_timeout;
        RETURN 'skipped';
    END;
    PERFORM set_config('lock_timeout', v_saved, true);
    RETURN p_done;
END
$$;
COMMENT ON FUNCTION hatchet._partition_ddl(text, text, text) IS
    'run one partition DDL with a short lock_timeout; ''skipped'' if its locks were not granted in time';

-- Creates the partitions for [today - 1 day, today + days_ahead] that are missing and drops partitions that ended more
-- than retention_days ago (and deletes the hatchet.alerts rows older than that). A partition is never dropped while a task inside it is still queued, delayed or running.
-- Returns one row per partition created, dropped or skipped.
--
-- Both DDLs lock the parent table ACCESS EXCLUSIVE, and a lock request that waits makes every later enqueue and read
-- of that table wait behind it. So each one waits at most hatchet.ddl_lock_timeout for its locks (in a subtransaction
-- of its own); if they are not granted (a long reader holds the table), the partition is skipped with a WARNING and
-- the action 'skipped', and the worker tries again a minute later.
CREATE FUNCTION hatchet.maintain_partitions(
    days_ahead     integer DEFAULT NULL,
    retention_days integer DEFAULT NULL
) RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ahead     integer := coalesce(days_ahead, current_setting('hatchet.partition_days_ahead', true)::integer, 3);
    v_retention integer := coalesce(retention_days, current_setting('hatchet.retention_days', true)::integer, 30);
    v_today     date    := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_oldest_live timestamptz;
    v_table     text;
    v_day       date;
    v_name      text;
    v_upper     date;
    r           record;
BEGIN
    IF v_ahead < 1 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['days_ahead must be at least 1']);
    END IF;
    IF v_retention < 1 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['retention_days must be at least 1']);
    END IF;

    -- Serialise concurrent maintainers (the worker and a manual call) so neither trips over the other's DDL.
    PERFORM pg_advisory_xact_lock(hashtext('pg_hatchet.maintain_partitions'));

    FOREACH v_table IN ARRAY hatchet.partitioned_tables() LOOP
        FOR v_day IN SELECT d::date FROM generate_series(v_today - 1, v_today + v_ahead, interval '1 day') AS d LOOP
            v_name := format('%s_p%s', v_table, to_char(v_day, 'YYYYMMDD'));
            IF to_regclass(format('hatchet.%I', v_name)) IS NULL THEN
                action := hatchet._partition_ddl(format(
                    'CREATE TABLE hatchet.%I PARTITION OF hatchet.%I FOR VALUES FROM (%L) TO (%L)',
                    v_name, v_table,
                    (v_day::timestamp AT TIME ZONE 'UTC'), ((v_day + 1)::timestamp AT TIME ZONE 'UTC')),
                    'created', v_name);
                partition_name := v_name;
                RETURN NEXT;
            END IF;
        END LOOP;
    END LOOP;

    -- The oldest task that still has an attempt in flight pins its partition (and every later one).
    SELECT min(x) INTO v_oldest_live FROM (
        SELECT min(task_inserted_at) AS x FROM hatchet.ready_queue
        UNION ALL SELECT min(task_inserted_at) FROM hatchet.delayed_queue
        UNION ALL SELECT min(task_inserted_at) FROM hatchet.running
        UNION ALL SELECT min(task_inserted_at) FROM hatchet.concurrency_queue
        -- An unfinished workflow run pins the day of its runs row too (a UUIDv7's first 48 bits are its creation time
        -- in ms; spelled out in SQL because this runs before the Rust functions exist, at CREATE EXTENSION).
        UNION ALL SELECT to_timestamp(min(('x' || left(replace(u_run::text, '-', ''), 12))::bit(48)::bigint) / 1000.0)
        FROM (SELECT run_id FROM hatchet.matches
              UNION ALL SELECT run_id FROM hatchet.ready_queue WHERE run_id IS NOT NULL
              UNION ALL SELECT run_id FROM hatchet.running WHERE run_id IS NOT NULL) AS unfinished(u_run)
    ) live;

    FOR r IN
        SELECT c.relname, p.relname AS parent
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = 'hatchet' AND p.relname = ANY (hatchet.partitioned_tables())
          AND c.relname ~ '_p[0-9]{8}$'
        ORDER BY c.relname
    LOOP
        v_upper := to_date(right(r.relname, 8), 'YYYYMMDD') + 1;
        IF v_upper <= v_today - v_retention
           AND (v_oldest_live IS NULL OR (v_upper::timestamp AT TIME ZONE 'UTC') <= v_oldest_live) THEN
            action := hatchet._partition_ddl(format('DROP TABLE hatchet.%I', r.relname), 'dropped', r.relname);
            partition_name := r.relname;
            RETURN NEXT;
        END IF;
    END LOOP;

    -- The record of alerts sent (sql/alerts.sql) expires with the history it is about.
    DELETE FROM hatchet.alerts a WHERE a.created_at < ((v_today - v_retention)::timestamp AT TIME ZONE 'UTC');
END
$$;
COMMENT ON FUNCTION hatchet.maintain_partitions(integer, integer) IS
    'create missing daily history partitions ahead of today and drop those past retention';

-- The first partitions exist as soon as the extension does, so enqueue works before the worker's first pass.
SELECT count(*) FROM hatchet.maintain_partitions();

-- ---------------------------------------------------------------------------------------------------------------------
-- The maintenance pass
-- ---------------------------------------------------------------------------------------------------------------------

-- Why an attempt timed out, in Hatchet's words ("Task exceeded timeout of 5s"), which the SDKs and Hatchet's own
-- tests look for.
CREATE FUNCTION hatchet._timeout_reason(p_timeout interval) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('Task exceeded timeout of %ss', pg_catalog.trim_scale(extract(epoch FROM p_timeout)))
$$;

-- Times out running attempts past timeout_at (a failure that obeys retries). Each row is locked with SKIP LOCKED
-- before it is deleted, so two reapers racing never time out the same attempt twice.
CREATE FUNCTION hatchet._reap_timeouts(p_tenant uuid, p_now timestamptz, p_limit integer) RETURNS integer
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

-- Cancels these ready attempts (ctids of ready_queue rows, locked by the caller) with a reason: their CANCELLED
-- events, idempotency keys, concurrency slots and runs. Returns how many it cancelled.
CREATE FUNCTION hatchet._cancel_ready(p_tenant uuid, p_ctids tid[], p_now timestamptz, p_reason text) RETURNS integer
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

-- Cancels queued attempts that waited longer than their schedule timeout (no worker took them in time), and
-- attempts a paused workflow held longer than its queue TTL (counted from the attempt's task creation, or from the
-- pause if later).
CREATE FUNCTION hatchet._expire_queued(p_tenant uuid, p_now timestamptz, p_limit integer) RETURNS integer
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

-- Records this tenant's maintenance pass and returns since when maintenance has run without a gap. A gap longer than
-- an outage (3 s, or three poll intervals if longer) means Postgres or the background worker was away: nobody could
-- heartbeat, so the grace of every worker starts again at its end. The first pass ever is no outage. (The floor was
-- 5 s: in the second long chaos run two Postgres crash restarts 4-5 s apart (passes every second, gaps of about 4
-- s), and one followed by pg_terminate_backend of the servers' connections, each left under it, so workers that had
-- no chance to heartbeat in between were declared dead: a longer grace after a short gap only delays a death.)
CREATE FUNCTION hatchet._record_pass(p_tenant uuid, p_now timestamptz) RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- (a setting with a unit reads as text like '1s' or '1500ms')
    v_outage interval := greatest(interval '3 seconds',
                                  3 * coalesce(current_setting('hatchet.poll_interval_ms', true)::interval,
                                               interval '1 second'));
    v_since timestamptz;
BEGIN
    -- Two passes at once (the background worker's and one called by hand): the one holding the row records, the
    -- other does not wait for it (it would wait out its whole pass, past the pass's lock_timeout).
    PERFORM 1 FROM hatchet.maintenance_state m WHERE m.tenant_id = p_tenant FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT m.reachable_since INTO v_since FROM hatchet.maintenance_state m WHERE m.tenant_id = p_tenant;
        IF FOUND THEN
            RETURN v_since;
        END IF;
    END IF;
    INSERT INTO hatchet.maintenance_state AS m (tenant_id, last_pass_at, reachable_since)
    VALUES (p_tenant, p_now, '-infinity')
    ON CONFLICT ON CONSTRAINT maintenance_state_pkey DO UPDATE
    SET last_pass_at = greatest(m.last_pass_at, excluded.last_pass_at),
        reachable_since = CASE WHEN excluded.last_pass_at - m.last_pass_at > v_outage THEN excluded.last_pass_at
                               ELSE m.reachable_since END
    RETURNING m.reachable_since INTO v_since;
    RETURN v_since;
END
$$;

-- Workers silent for longer than hatchet.worker_dead_after_ms while the engine was reachable are dead: their
-- attempts are reassigned, and each is remembered (reaped_attempts) and announced on hatchet_cancel, so that the
-- worker, if it was only cut off and comes back, is told to stop them. Silence counts from the later of the last
-- heartbeat and the end of the last maintenance gap (hatchet._record_pass): after an outage every worker gets the
-- full grace to heartbeat again.
CREATE FUNCTION hatchet._reap_dead_workers(p_tenant uuid, p_now timestamptz) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_dead uuid;
    v_cancelled bigint;
    n integer := 0;
    v_after interval := make_interval(secs => coalesce(current_setting('hatchet.worker_dead_after_ms', true)::integer,
                                                        30000) / 1000.0);
    v_since timestamptz := coalesce((SELECT m.reachable_since FROM hatchet.maintenance_state m
                                     WHERE m.tenant_id = p_tenant), '-infinity');
BEGIN
    DELETE FROM hatchet.reaped_attempts a WHERE a.tenant_id = p_tenant AND a.reaped_at < p_now - interval '1 day';
    FOR v_dead IN
        SELECT w.id FROM hatchet.workers w
        WHERE w.tenant_id = p_tenant AND w.is_active AND greatest(w.last_heartbeat_at, v_since) < p_now - v_after
        FOR UPDATE SKIP LOCKED
    LOOP
        -- Each worker in a subtransaction: one whose attempts another transaction keeps locked past the pass's
        -- lock_timeout (_maintenance_job) is left whole for the next pass; the other dead workers are still reaped.
        BEGIN
            WITH held AS (
                INSERT INTO hatchet.reaped_attempts (tenant_id, worker_id, task_id, retry_count, reaped_at)
                SELECT p_tenant, v_dead, r.task_id, r.retry_count, p_now FROM hatchet.running r
                WHERE r.tenant_id = p_tenant AND r.worker_id = v_dead
                ON CONFLICT ON CONSTRAINT reaped_attempts_pkey DO NOTHING
                RETURNING task_id, retry_count
            )
            SELECT count(pg_notify('hatchet_cancel', h.task_id::text || ':' || h.retry_count || ':' || v_dead::text))
            INTO v_cancelled FROM held h;
            n := n + hatchet.deregister_worker(v_dead, 'worker stopped sending heartbeats', p_tenant);
            PERFORM hatchet._alert_worker_died(p_tenant, v_dead, v_cancelled);
        EXCEPTION WHEN lock_not_available THEN
            RAISE LOG 'pg_hatchet: dead worker % not reaped yet: another transaction holds its attempts (%)',
                v_dead, SQLERRM;
        END;
    END LOOP;
    RETURN n;
END
$$;

-- Attempts pushed to a registered worker that it never acknowledged (no STARTED) within worker_dead_after, counted
-- like worker silence from the end of the last outage: the assignment committed but never reached the worker (the
-- server replica died between commit and push, or the commit's answer was lost). They are retried elsewhere as
-- internal failures (REASSIGNED), and a cancellation is announced in case the worker has them after all.
--
-- Each attempt is released in a subtransaction of its own. Releasing one locks its worker's hatchet.worker_slots row
-- (_fail_attempt -> _release), which a client stopped inside a transaction may hold: a server replica SIGSTOPped in
-- its completion transaction for that worker (after complete_many released one of the worker's slots, before assign
-- and COMMIT) holds it until it resumes or Postgres ends its idle session (hatchet-server's
-- idle_in_transaction_session_timeout). An attempt whose release gives up on a lock (the job's 200 ms lock_timeout,
-- SQLSTATE 55P03) is left for the next pass, and so are the other attempts of the same worker in this pass (each would
-- wait out the lock_timeout again); the attempts of every other worker are still released.
CREATE FUNCTION hatchet._release_unacknowledged(p_tenant uuid, p_now timestamptz, p_limit integer) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run hatchet.running;
    v_cand record;
    v_held uuid[] := '{}';
    n integer := 0;
    v_after interval := make_interval(secs => coalesce(current_setting('hatchet.worker_dead_after_ms', true)::integer,
                                                        30000) / 1000.0);
    v_since timestamptz := coalesce((SELECT m.reachable_since FROM hatchet.maintenance_state m
                                     WHERE m.tenant_id = p_tenant), '-infinity');
BEGIN
    IF v_since >= p_now - v_after THEN
        RETURN 0;
    END IF;
    FOR v_cand IN
        SELECT x.ctid AS row_ctid, x.worker_id FROM hatchet.running x
        WHERE x.tenant_id = p_tenant AND x.worker_id IS NOT NULL AND x.started_at IS NULL
          AND x.assigned_at < p_now - v_after
        ORDER BY x.assigned_at LIMIT p_limit
    LOOP
        CONTINUE WHEN v_cand.worker_id = ANY (v_held);
        BEGIN
            DELETE FROM hatchet.running r
            WHERE r.ctid = (SELECT x.ctid FROM hatchet.running x
                            WHERE x.ctid = v_cand.row_ctid AND x.started_at IS NULL
                            FOR UPDATE SKIP LOCKED)
            RETURNING r.* INTO v_run;
            IF FOUND THEN
                PERFORM pg_notify('hatchet_cancel',
                                  v_run.task_id::text || ':' || v_run.retry_count || ':' || v_run.worker_id::text);
                PERFORM hatchet._fail_attempt(p_tenant, v_run,
                    'the worker never acknowledged the assignment (no STARTED within worker_dead_after)', true, true);
                n := n + 1;
            END IF;
        EXCEPTION WHEN lock_not_available THEN
            v_held := v_held || v_cand.worker_id;
            RAISE LOG 'pg_hatchet: attempts of worker % not released yet: another transaction holds a lock (%)',
                v_cand.worker_id, SQLERRM;
        END;
    END LOOP;
    RETURN n;
END
$$;

-- Retention: chunks of finished runs, once the last chunk of the run is older than `grace`; and any chunk older than
-- `max_age`, finished run or not (a stream nobody reads must not grow forever). Returns the number deleted.
CREATE FUNCTION hatchet.prune_stream_chunks(grace interval DEFAULT '5 minutes', max_age interval DEFAULT '1 day')
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_deleted bigint := 0;
    v_n       bigint;
    v_run     record;
    v_done    boolean;
BEGIN
    DELETE FROM hatchet.stream_chunks c WHERE c.created_at < clock_timestamp() - prune_stream_chunks.max_age;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    FOR v_run IN
        SELECT c.tenant_id, c.run_id FROM hatchet.stream_chunks c
        GROUP BY c.tenant_id, c.run_id
        HAVING max(c.created_at) < clock_timestamp() - prune_stream_chunks.grace
    LOOP
        BEGIN
            v_done := hatchet.run_status(v_run.run_id, v_run.tenant_id) IN ('COMPLETED', 'FAILED', 'CANCELLED');
        EXCEPTION WHEN undefined_object THEN
            v_done := true;  -- the run itself is gone (history retention)
        END;
        IF v_done THEN
            DELETE FROM hatchet.stream_chunks c WHERE c.tenant_id = v_run.tenant_id AND c.run_id = v_run.run_id;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_deleted := v_deleted + v_n;
        END IF;
    END LOOP;
    RETURN v_deleted;
END
$$;
COMMENT ON FUNCTION hatchet.prune_stream_chunks(interval, interval) IS
    'delete stream chunks of runs finished longer than grace ago, and any chunk older than max_age';

-- ---------------------------------------------------------------------------------------------------------------------
-- Isolation of tenants and jobs
-- ---------------------------------------------------------------------------------------------------------------------

-- The jobs of a pass, in the order each tenant runs them.
CREATE FUNCTION hatchet.maintenance_jobs() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['record_pass', 'promote_due', 'reap_dead_workers', 'release_unacknowledged', 'reap_timeouts',
                 'expire_queued', 'retry_preemptions', 'time_triggers']
$$;
COMMENT ON FUNCTION hatchet.maintenance_jobs() IS 'the per-tenant jobs of a maintenance pass, in order';

-- Records a failed job (p_tenant NULL for a job that is not per tenant) in hatchet.maintenance_status and logs it.
CREATE FUNCTION hatchet._maintenance_failed(p_tenant uuid, p_job text, p_sqlstate text, p_error text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO hatchet.maintenance_status AS s (tenant_id, job, failures, last_error, last_sqlstate, last_failed_at)
    VALUES (p_tenant, p_job, 1, p_error, p_sqlstate, clock_timestamp())
    ON CONFLICT (tenant_id, job) DO UPDATE
    SET failures = s.failures + 1, last_error = excluded.last_error, last_sqlstate = excluded.last_sqlstate,
        last_failed_at = excluded.last_failed_at, last_ok_at = NULL;
    RAISE WARNING 'pg_hatchet: maintenance job "%" failed for %, skipped until the next pass: % (SQLSTATE %)',
        p_job, coalesce('tenant ' || p_tenant, 'all tenants'), p_error, p_sqlstate;
END
$$;
COMMENT ON FUNCTION hatchet._maintenance_failed(uuid, text, text, text) IS
    'count a failed maintenance job in hatchet.maintenance_status and log it';

-- The jobs failing now, as 'tenant/job' (read once per pass, so a job that recovers is marked so cheaply).
CREATE FUNCTION hatchet._failing_jobs() RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(coalesce(s.tenant_id::text, '') || '/' || s.job), '{}')
    FROM hatchet.maintenance_status s WHERE s.last_ok_at IS NULL
$$;
COMMENT ON FUNCTION hatchet._failing_jobs() IS 'the maintenance jobs failing now, as tenant/job';

-- Runs one job for one tenant in a subtransaction (the block with EXCEPTION). An error rolls back just this job for
-- just this tenant, is recorded (_maintenance_failed) and returns false; a cancel (statement_timeout, shutdown) is not
-- caught and ends the whole pass. p_failing: _failing_jobs() at the start of the pass, so that the first success of a
-- failing job is recorded.
--
-- A job waits at most 200 ms for any lock (lock_timeout, restored afterwards): the whole pass is one transaction of
-- the background worker, so a job waiting on a lock that a client holds in an open transaction would hold up every
-- job of every tenant after it, cron ticks included. A client stopped (SIGSTOP, a debugger, a network partition with
-- the TCP connection still open) between two statements of its transaction holds its row locks for as long as it is
-- stopped: in the chaos suite a replica stopped after hatchet.complete_many (in complete_and_assign's transaction)
-- kept its workers' hatchet.running rows locked, the pass waited in deregister_worker (reaping those workers) for
-- 15 s, and 4 cron ticks of another tenant were missed. A job that gives up on a lock (SQLSTATE 55P03) is recorded
-- like any failure and tried again on the next pass; the jobs themselves skip what is locked where they can
-- (_reap_dead_workers a worker, _tenant_time_triggers a cron, schedule or sleep), so that the rest still runs.
CREATE FUNCTION hatchet._maintenance_job(p_tenant uuid, p_job text, p_now timestamptz, p_limit integer,
                                         p_failing text[] DEFAULT '{}') RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
    v_error text;
    v_saved text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config('lock_timeout', '200ms', true);
    BEGIN
        CASE p_job
            WHEN 'record_pass' THEN PERFORM hatchet._record_pass(p_tenant, p_now);
            WHEN 'promote_due' THEN PERFORM hatchet._promote_due(p_tenant, NULL, p_now, p_limit);
            WHEN 'reap_dead_workers' THEN PERFORM hatchet._reap_dead_workers(p_tenant, p_now);
            WHEN 'release_unacknowledged' THEN PERFORM hatchet._release_unacknowledged(p_tenant, p_now, p_limit);
            WHEN 'reap_timeouts' THEN PERFORM hatchet._reap_timeouts(p_tenant, p_now, p_limit);
            WHEN 'expire_queued' THEN PERFORM hatchet._expire_queued(p_tenant, p_now, p_limit);
            WHEN 'retry_preemptions' THEN PERFORM hatchet._retry_preemptions(p_tenant, p_limit);
            WHEN 'time_triggers' THEN PERFORM hatchet._tenant_time_triggers(p_tenant, p_now, p_limit);
        END CASE;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_error = MESSAGE_TEXT;
        PERFORM set_config('lock_timeout', v_saved, true);
        PERFORM hatchet._maintenance_failed(p_tenant, p_job, v_state, v_error);
        RETURN false;
    END;
    PERFORM set_config('lock_timeout', v_saved, true);
    IF (coalesce(p_tenant::text, '') || '/' || p_job) = ANY (p_failing) THEN
        UPDATE hatchet.maintenance_status s SET last_ok_at = clock_timestamp()
        WHERE s.tenant_id IS NOT DISTINCT FROM p_tenant AND s.job = p_job AND s.last_ok_at IS NULL;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION hatchet._maintenance_job(uuid, text, timestamptz, integer, text[]) IS
    'run one maintenance job for one tenant in a subtransaction; a failure is recorded and skipped';

-- ---------------------------------------------------------------------------------------------------------------------
-- The pass
-- ---------------------------------------------------------------------------------------------------------------------

-- One maintenance pass over every tenant: promote due delayed attempts, reap dead workers, time out expired attempts,
-- cancel queued attempts past their schedule timeout, fire due crons, schedules and sleeps; each job for each tenant
-- in a subtransaction of its own (_maintenance_job). Returns when the next known item is due (NULL if nothing is
-- pending), which the background worker uses as its next wake-up.
CREATE FUNCTION hatchet.run_maintenance() RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now     timestamptz := clock_timestamp();
    v_limit   integer := coalesce(current_setting('hatchet.batch_limit', true)::integer, 1000);
    v_failing text[] := hatchet._failing_jobs();
    v_next    timestamptz;
    v_tenant  uuid;
    v_job     text;
BEGIN
    FOR v_tenant IN SELECT t.tenant_id FROM hatchet.tenants t ORDER BY t.tenant_id LOOP
        FOREACH v_job IN ARRAY hatchet.maintenance_jobs() LOOP
            PERFORM hatchet._maintenance_job(v_tenant, v_job, v_now, v_limit, v_failing);
        END LOOP;
    END LOOP;
    SELECT min(x) INTO v_next FROM (
        SELECT (SELECT min(d.ready_at) FROM hatchet.delayed_queue d WHERE d.tenant_id = t.tenant_id) AS x
        FROM hatchet.tenants t
        UNION ALL
        -- (every tenant's at once: one probe of running_timeout_idx, which is not led by tenant_id)
        SELECT (SELECT min(r.timeout_at) FROM hatchet.running r)
        UNION ALL
        SELECT (SELECT min(r.schedule_timeout_at) FROM hatchet.ready_queue r WHERE r.tenant_id = t.tenant_id)
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(r.schedule_timeout_at) FROM hatchet.concurrency_queue r WHERE r.tenant_id = t.tenant_id)
        FROM hatchet.tenants t
    ) due;
    -- Crons, schedules and sleeps (sql/crons.sql, sql/runs.sql): their next due time counts too.
    RETURN least(v_next, hatchet._time_triggers_due());
END
$$;
COMMENT ON FUNCTION hatchet.run_maintenance() IS
    'one pass of the background worker: promote due tasks, time out attempts, expire queued tasks; returns next due time';

-- Fires due cron ticks, due schedules and due sleeps of every tenant (at most hatchet.batch_limit of each per tenant),
-- each tenant in a subtransaction of its own (a tenant whose firing fails is logged, counted in
-- hatchet.maintenance_status and skipped), and returns when the next one is due (NULL if none). Callable by hand;
-- hatchet.run_maintenance does the same per tenant.
CREATE FUNCTION hatchet._run_time_triggers(p_now timestamptz DEFAULT NULL) RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now     timestamptz := coalesce(p_now, clock_timestamp());
    v_limit   integer := coalesce(current_setting('hatchet.batch_limit', true)::integer, 1000);
    v_failing text[] := hatchet._failing_jobs();
    v_tenant  uuid;
BEGIN
    FOR v_tenant IN SELECT t.tenant_id FROM hatchet.tenants t ORDER BY t.tenant_id LOOP
        PERFORM hatchet._maintenance_job(v_tenant, 'time_triggers', v_now, v_limit, v_failing);
    END LOOP;
    RETURN hatchet._time_triggers_due();
END
$$;
COMMENT ON FUNCTION hatchet._run_time_triggers(timestamptz) IS
    'fire due cron ticks, schedules and sleeps (one run per tick, never twice); returns when the next one is due';
