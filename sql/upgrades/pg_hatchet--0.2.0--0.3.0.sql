-- pg_hatchet 0.2.0 -> 0.3.0 (applied by ALTER EXTENSION pg_hatchet UPDATE TO '0.3.0').
--
-- What 0.3.0 changes in the installed SQL, by topic (each section says what it changes). Each definition below is the
-- same text as in sql/*.sql, so an updated 0.2.0 and a fresh 0.3.0 have the same catalog (tests/upgrade).

\echo Use "ALTER EXTENSION pg_hatchet UPDATE TO '0.3.0'" to load this file. \quit

-- =====================================================================================================================
-- 1. Hardening: CEL budget, maintenance isolation, quotas (issue 15)
-- =====================================================================================================================

-- CEL budget: no SQL changes (the limits live in the library and its hatchet.cel_* settings). New settings:
-- hatchet.cel_max_length, cel_max_depth, cel_max_cost, cel_timeout, ddl_lock_timeout, max_log_line_bytes,
-- max_logs_per_task, max_stream_chunk_bytes, max_stream_chunks_per_task, max_error_bytes.

-- Maintenance isolation: failures per tenant and job (sql/schema.sql).
-- One row per tenant and maintenance job that ever failed (sql/maintenance.sql): the background worker runs each job
-- for each tenant in a subtransaction, so a failure is rolled back, logged, counted here and skipped, and the other
-- tenants and jobs go on. The row stays (with its count) after the job recovers; last_ok_at says it did.
CREATE TABLE hatchet.maintenance_status (
    -- NULL for the jobs that are not per tenant (partitions)
    tenant_id      uuid        REFERENCES hatchet.tenants ON DELETE CASCADE,
    job            text        NOT NULL,
    failures       bigint      NOT NULL DEFAULT 0,
    last_error     text,
    last_sqlstate  text,
    last_failed_at timestamptz,
    -- the first success after the last failure (NULL while the job is still failing)
    last_ok_at     timestamptz,
    CONSTRAINT maintenance_status_key UNIQUE NULLS NOT DISTINCT (tenant_id, job)
);
COMMENT ON TABLE hatchet.maintenance_status IS
    'maintenance jobs that failed, per tenant and job: how often, the last error and when, and when one next succeeded';

-- Quotas on what tasks write (sql/options.sql, sql/tasks.sql, sql/streams.sql).
CREATE OR REPLACE FUNCTION hatchet._check_size(p_what text, p_bytes integer, p_setting text) RETURNS void
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

CREATE OR REPLACE FUNCTION hatchet._check_count(p_what text, p_task uuid, p_setting text, p_count bigint) RETURNS void
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

CREATE OR REPLACE FUNCTION hatchet.put_log(task_id uuid, message text, level text DEFAULT 'INFO', retry_count integer DEFAULT NULL,
                                created_at timestamptz DEFAULT NULL, tenant_id uuid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(put_log.tenant_id, hatchet.default_tenant());
    v_at timestamptz := hatchet.uuid_time(put_log.task_id);
BEGIN
    IF put_log.message IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['message']);
    END IF;
    PERFORM hatchet._check_size('log line', octet_length(put_log.message), 'hatchet.max_log_line_bytes');
    IF NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at
                                                   AND t.id = put_log.task_id) THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[put_log.task_id::text]);
    END IF;
    PERFORM hatchet._check_count('log lines', put_log.task_id, 'hatchet.max_logs_per_task',
        (SELECT count(*) FROM (SELECT 1 FROM hatchet.logs l
                               WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_at AND l.task_id = put_log.task_id
                               LIMIT current_setting('hatchet.max_logs_per_task')::integer) x));
    INSERT INTO hatchet.logs (tenant_id, task_inserted_at, task_id, created_at, retry_count, level, message)
    VALUES (p_tenant, v_at, put_log.task_id, coalesce(put_log.created_at, clock_timestamp()),
            coalesce(put_log.retry_count,
                     (SELECT r.retry_count FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = put_log.task_id),
                     0),
            upper(coalesce(put_log.level, 'INFO')), put_log.message);
END
$$;
COMMENT ON FUNCTION hatchet.put_log(uuid, text, text, integer, timestamptz, uuid) IS 'append a log line of a task';

CREATE OR REPLACE FUNCTION hatchet.fail(
    task_id     uuid,
    retry_count integer,
    error       text,
    retryable   boolean DEFAULT true,
    tenant_id   uuid    DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(fail.tenant_id, hatchet.default_tenant());
    v_run    hatchet.running;
BEGIN
    IF fail.error IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['error']);
    END IF;
    IF fail.retryable IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['retryable']);
    END IF;
    PERFORM hatchet._check_size('error', octet_length(fail.error), 'hatchet.max_error_bytes');
    DELETE FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND r.task_id = fail.task_id AND r.retry_count = fail.retry_count
    RETURNING r.* INTO v_run;
    IF NOT FOUND THEN
        PERFORM hatchet._reject_stale(p_tenant, fail.task_id, fail.retry_count);
    END IF;
    RETURN hatchet._fail_attempt(p_tenant, v_run, fail.error, fail.retryable);
END
$$;
COMMENT ON FUNCTION hatchet.fail(uuid, integer, text, boolean, uuid) IS
    'fail the running attempt: returns QUEUED if a retry was scheduled (with backoff), FAILED if none remain';

CREATE OR REPLACE FUNCTION hatchet.put_stream_chunk(
    task_id     uuid,
    message     bytea,
    event_index bigint      DEFAULT NULL,
    tenant_id   uuid        DEFAULT NULL,
    created_at  timestamptz DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(put_stream_chunk.tenant_id, hatchet.default_tenant());
    p_task   uuid := put_stream_chunk.task_id;
    v_run    uuid;
    v_retry  integer;
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    IF put_stream_chunk.message IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['message']);
    END IF;
    PERFORM hatchet._check_size('stream chunk', octet_length(put_stream_chunk.message), 'hatchet.max_stream_chunk_bytes');
    IF put_stream_chunk.event_index < 0 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('event_index must not be negative, not %s', put_stream_chunk.event_index)]);
    END IF;
    SELECT t.run_id INTO v_run FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(p_task) AND t.id = p_task;
    IF v_run IS NULL THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
    END IF;
    PERFORM hatchet._check_count('stream chunks', p_task, 'hatchet.max_stream_chunks_per_task',
        (SELECT count(*) FROM (SELECT 1 FROM hatchet.stream_chunks c
                               WHERE c.tenant_id = p_tenant AND c.run_id = v_run AND c.task_id = p_task
                               LIMIT current_setting('hatchet.max_stream_chunks_per_task')::integer) x));
    v_retry := coalesce((SELECT r.retry_count FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
                        (SELECT max(e.retry_count) FROM hatchet.task_events e
                         WHERE e.tenant_id = p_tenant AND e.task_inserted_at = hatchet.uuid_time(p_task)
                           AND e.task_id = p_task),
                        0);
    INSERT INTO hatchet.stream_chunks (tenant_id, run_id, task_id, retry_count, event_index, message, created_at)
    VALUES (p_tenant, v_run, p_task, v_retry, put_stream_chunk.event_index, put_stream_chunk.message,
            coalesce(put_stream_chunk.created_at, clock_timestamp()))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;  -- the same chunk again (a client retry): stored once
    END IF;
    PERFORM pg_notify('hatchet_stream', v_run::text);
    RETURN true;
END
$$;
COMMENT ON FUNCTION hatchet.put_stream_chunk(uuid, bytea, bigint, uuid, timestamptz) IS
    'append a stream chunk of a task to its run''s stream and NOTIFY hatchet_stream; false if it was already stored';

-- Maintenance isolated per tenant and job, partition DDL with a short lock_timeout (sql/crons.sql,
-- sql/maintenance.sql).
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
            PERFORM hatchet._create_run(p_tenant, v_version, c.input,
                hatchet._clean_metadata(c.additional_metadata) || jsonb_build_object(
                    'hatchet__cron_name', c.name, 'hatchet__cron_expression', c.expression,
                    'hatchet__scheduled_at', hatchet._iso_utc(c.next_tick_at), 'hatchet__triggered_by', 'cron'),
                c.priority, 'cron');
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

CREATE OR REPLACE FUNCTION hatchet._time_triggers_due() RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_next timestamptz;
BEGIN
    SELECT min(x) INTO v_next FROM (
        SELECT (SELECT min(c2.next_tick_at) FROM hatchet.crons c2 WHERE c2.tenant_id = t.tenant_id AND c2.enabled) AS x
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(s2.run_at) FROM hatchet.scheduled_runs s2
                WHERE s2.tenant_id = t.tenant_id AND s2.fired_run_id IS NULL AND s2.error IS NULL)
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(m2.wake_at) FROM hatchet.matches m2 WHERE m2.tenant_id = t.tenant_id AND m2.wake_at IS NOT NULL)
        FROM hatchet.tenants t
    ) due;
    RETURN v_next;
END
$$;
COMMENT ON FUNCTION hatchet._time_triggers_due() IS 'when the next cron tick, schedule or sleep of any tenant is due';

CREATE OR REPLACE FUNCTION hatchet._partition_ddl(p_sql text, p_done text, p_name text) RETURNS text
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

CREATE OR REPLACE FUNCTION hatchet.maintain_partitions(
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
END
$$;
COMMENT ON FUNCTION hatchet.maintain_partitions(integer, integer) IS
    'create missing daily history partitions ahead of today and drop those past retention';

CREATE OR REPLACE FUNCTION hatchet.maintenance_jobs() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ARRAY['promote_due', 'reap_dead_workers', 'reap_timeouts', 'expire_queued', 'time_triggers'] $$;
COMMENT ON FUNCTION hatchet.maintenance_jobs() IS 'the per-tenant jobs of a maintenance pass, in order';

CREATE OR REPLACE FUNCTION hatchet._maintenance_failed(p_tenant uuid, p_job text, p_sqlstate text, p_error text) RETURNS void
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

CREATE OR REPLACE FUNCTION hatchet._failing_jobs() RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(coalesce(s.tenant_id::text, '') || '/' || s.job), '{}')
    FROM hatchet.maintenance_status s WHERE s.last_ok_at IS NULL
$$;
COMMENT ON FUNCTION hatchet._failing_jobs() IS 'the maintenance jobs failing now, as tenant/job';

CREATE OR REPLACE FUNCTION hatchet._maintenance_job(p_tenant uuid, p_job text, p_now timestamptz, p_limit integer,
                                         p_failing text[] DEFAULT '{}') RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
    v_error text;
BEGIN
    BEGIN
        CASE p_job
            WHEN 'promote_due' THEN PERFORM hatchet._promote_due(p_tenant, NULL, p_now, p_limit);
            WHEN 'reap_dead_workers' THEN PERFORM hatchet._reap_dead_workers(p_tenant, p_now);
            WHEN 'reap_timeouts' THEN PERFORM hatchet._reap_timeouts(p_tenant, p_now, p_limit);
            WHEN 'expire_queued' THEN PERFORM hatchet._expire_queued(p_tenant, p_now, p_limit);
            WHEN 'time_triggers' THEN PERFORM hatchet._tenant_time_triggers(p_tenant, p_now, p_limit);
        END CASE;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_error = MESSAGE_TEXT;
        PERFORM hatchet._maintenance_failed(p_tenant, p_job, v_state, v_error);
        RETURN false;
    END;
    IF (coalesce(p_tenant::text, '') || '/' || p_job) = ANY (p_failing) THEN
        UPDATE hatchet.maintenance_status s SET last_ok_at = clock_timestamp()
        WHERE s.tenant_id IS NOT DISTINCT FROM p_tenant AND s.job = p_job AND s.last_ok_at IS NULL;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION hatchet._maintenance_job(uuid, text, timestamptz, integer, text[]) IS
    'run one maintenance job for one tenant in a subtransaction; a failure is recorded and skipped';

CREATE OR REPLACE FUNCTION hatchet.run_maintenance() RETURNS timestamptz
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
        SELECT (SELECT min(r.timeout_at) FROM hatchet.running r WHERE r.tenant_id = t.tenant_id) FROM hatchet.tenants t
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

CREATE OR REPLACE FUNCTION hatchet._run_time_triggers(p_now timestamptz DEFAULT NULL) RETURNS timestamptz
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

-- =====================================================================================================================
-- 2. Fault recovery (issue 16)
-- =====================================================================================================================


-- =====================================================================================================================
-- 3. SDK parity (issue 20)
-- =====================================================================================================================


-- =====================================================================================================================
-- 4. Roles and privileges (issue 15); last, so that its grants and SECURITY DEFINER options apply to the final
--    definitions above
-- =====================================================================================================================

